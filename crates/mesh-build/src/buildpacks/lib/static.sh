# The static buildpack's document root, shared by its scripts: static.json's "root", else the
# app root when it has an index.html, else public/.
static_root() {
  root=
  if [ -f static.json ]; then
    root=$(tr -d '\n' <static.json | sed -n 's/.*"root"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
  fi
  if [ -z "$root" ]; then
    if [ -f index.html ]; then root=.; elif [ -d public ]; then root=public; fi
  fi
  root=${root#./}
  root=${root%/}
  echo "${root:-.}"
}

# The document root as an absolute path in the running app.
static_dir() {
  root=$(static_root)
  if [ "$root" = . ]; then echo /app; else echo "/app/$root"; fi
}
