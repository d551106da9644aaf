# The PHP buildpack's document root, shared by its bin/compile and bin/release: public/ when it
# holds the front controller, else the app root.
php_docroot() {
  if [ -f public/index.php ]; then echo public; else echo .; fi
}
