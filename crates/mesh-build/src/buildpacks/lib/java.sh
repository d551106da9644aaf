# The Java buildpack's choice of build, shared by its scripts. Prints maven, gradle, jar (one
# committed jar to run as it is), javac (plain .java files, no build tool) or nothing.
java_build_kind() {
  if [ -f mvnw ] || [ -f pom.xml ]; then
    echo maven
  elif [ -f gradlew ] || [ -f build.gradle ] || [ -f build.gradle.kts ]; then
    echo gradle
  elif [ "$(java_root_jars | wc -l)" -eq 1 ]; then
    echo jar
  elif [ -n "$(java_root_sources)" ]; then
    echo javac
  fi
}

java_root_jars() {
  for f in *.jar; do
    if [ -f "$f" ]; then echo "$f"; fi
  done
}

java_root_sources() {
  for f in *.java; do
    if [ -f "$f" ]; then echo "$f"; fi
  done
}

# The jar the web process runs: the committed one, or app.jar, where bin/compile puts what it built.
java_web_jar() {
  case $(java_build_kind) in
    jar) java_root_jars ;;
    maven | gradle | javac) echo app.jar ;;
  esac
}
