# The Go buildpack's naming, shared by its bin/compile and bin/release.

# The binary name of the module's root package: the last element of the module path, without a
# major version suffix (example.com/shop/v2 -> shop).
go_module_name() {
  path=$(sed -n 's/^module[[:space:]]*//p' go.mod | head -n1 | tr -d '"[:space:]')
  name=${path##*/}
  if printf '%s' "$name" | grep -Eq '^v[0-9]+$'; then
    rest=${path%/*}
    name=${rest##*/}
  fi
  printf '%s' "$name"
}

# Whether the module's root directory holds a main package.
go_root_is_main() {
  for f in *.go; do
    [ -f "$f" ] || continue
    case $f in *_test.go) continue ;; esac
    if grep -Eq '^package[[:space:]]+main([[:space:]]|$)' "$f"; then return 0; fi
  done
  return 1
}

# The one directory under cmd/, when there is exactly one.
go_single_cmd() {
  set --
  for d in cmd/*/; do
    [ -d "$d" ] && set -- "$@" "$d"
  done
  if [ $# -eq 1 ]; then
    d=${1%/}
    printf '%s' "${d##*/}"
  fi
}
