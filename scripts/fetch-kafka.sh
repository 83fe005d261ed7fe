#!/usr/bin/env bash
# Fetch the jars of a pinned Apache Kafka release (broker, tools and their dependencies) from
# Maven Central into .cache/kafka/<version>/libs (git-ignored), where msgstorm and the tests
# find them. Usage: scripts/fetch-kafka.sh [VERSION]; MSGSTORM_KAFKA_VERSION overrides the pin.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-${MSGSTORM_KAFKA_VERSION:-4.1.1}}"
dir=".cache/kafka/${version}"
libs="${dir}/libs"
if [ -f "${libs}/.complete" ]; then
  echo "kafka ${version}: ${libs} already fetched"
  exit 0
fi
mkdir -p "${dir}"
cat > "${dir}/pom.xml" <<POM
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>msgstorm</groupId>
  <artifactId>kafka-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>${version}</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>${version}</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-storage</artifactId><version>${version}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
  </dependencies>
</project>
POM
rm -rf "${libs}"
mvn -q -B -f "${dir}/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$(pwd)/${libs}"
touch "${libs}/.complete"
echo "kafka ${version}: $(ls "${libs}" | wc -l) jars in ${libs}"
