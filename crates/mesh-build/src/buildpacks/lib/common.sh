# Shared by Widemesh's built-in buildpacks; sourced by bin/compile and bin/release.
# POSIX sh: the build image is Debian minbase, where /bin/sh is dash.

step() { echo "-----> $*"; }
info() { echo "       $*"; }
fail() {
  echo " !     $*" >&2
  exit 1
}

# Exports the config variables of the Heroku-style env dir, one file per variable, except those
# that would change how the build itself runs rather than what it builds.
export_env_dir() {
  env_dir=$1
  [ -d "$env_dir" ] || return 0
  for f in "$env_dir"/*; do
    [ -f "$f" ] || continue
    k=${f##*/}
    case $k in
      PATH | HOME | IFS | PS1 | GIT_DIR | CPATH | CPPATH | LD_PRELOAD | LIBRARY_PATH | LD_LIBRARY_PATH) continue ;;
    esac
    if printf '%s' "$k" | grep -Eq '^[A-Za-z_][A-Za-z0-9_]*$'; then
      export "$k=$(cat "$f")"
    fi
  done
}

# Prints a short digest of the named files (missing ones count as empty) and of any extra words,
# so a dependency cache is reused only when everything that decides its content is unchanged.
cache_key() {
  {
    for f in "$@"; do
      case $f in
        +*) echo "${f#+}" ;;
        *) echo "== $f" && { [ -f "$f" ] && cat "$f" || true; } ;;
      esac
    done
  } | sha256sum | cut -c1-16
}

# Copies a cached directory into the app: hard links when the cache and the app share a mount,
# a copy otherwise (hard links cannot cross mounts).
restore_dir() {
  src=$1 dst=$2
  rm -rf "$dst"
  mkdir -p "$(dirname "$dst")"
  cp -al "$src" "$dst" 2>/dev/null || {
    rm -rf "$dst"
    cp -a "$src" "$dst"
  }
}

# Saves a directory of the app into the cache with the key it was built from, replacing the
# previous entry so the cache holds one generation.
save_dir() {
  src=$1 dst=$2 key=$3
  rm -rf "$dst" "$dst.key" "$dst.tmp"
  [ -d "$src" ] || return 0
  mkdir -p "$(dirname "$dst")"
  cp -a "$src" "$dst.tmp" && mv "$dst.tmp" "$dst" && echo "$key" >"$dst.key"
}

# Whether the cache holds DIR built from KEY.
cache_hit() {
  dir=$1 key=$2
  [ -d "$dir" ] && [ -f "$dir.key" ] && [ "$(cat "$dir.key")" = "$key" ]
}

# Writes a script the platform sources before every process of the app.
profile_d() {
  mkdir -p "$BUILD_DIR/.profile.d"
  cat >"$BUILD_DIR/.profile.d/$1.sh"
}

# Prints the bin/release answer for a web command (none when empty).
release_web() {
  echo "---"
  if [ -n "$1" ]; then
    echo "default_process_types:"
    echo "  web: $1"
  else
    echo "default_process_types: {}"
  fi
}

# The directory of the running buildpack and the arguments of bin/compile.
compile_args() {
  BUILD_DIR=${1:?usage: compile BUILD_DIR CACHE_DIR ENV_DIR}
  CACHE_DIR=${2:?usage: compile BUILD_DIR CACHE_DIR ENV_DIR}
  ENV_DIR=${3:-}
  mkdir -p "$CACHE_DIR"
  export_env_dir "$ENV_DIR"
  cd "$BUILD_DIR"
}
