#!/usr/bin/env bash
# A single-node Apache Kafka 4.x broker (KRaft, combined broker+controller) on
# loopback, for the test suites. No Kafka broker is packaged for Debian: the
# server jars come from Maven Central (.ci/kafka/pom.xml) and are cached.
#
#   .ci/kafka.sh fetch                          copy the jars into the cache (once) and print the libs dir
#   .ci/kafka.sh run DATA_DIR PORT CTRL_PORT    format DATA_DIR if new, then run the broker in the foreground
#   .ci/kafka.sh start DATA_DIR PORT CTRL_PORT  run it in the background, wait until it answers, print its pid
#
# The cache is KAFKA_CACHE (default ~/.cache/web3-socket/kafka-<version>);
# Maven's own cache (~/.m2) makes a second fetch after a cache wipe fast too.
# Java 17 or newer is required (KAFKA_JAVA, else java on PATH). The JVM heap
# is kept small for a 2-core test machine (KAFKA_HEAP, default 512m).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
pom="$here/kafka/pom.xml"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")"
cache="${KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/web3-socket/kafka-$version}"
libs="$cache/libs"
java="${KAFKA_JAVA:-java}"

fetch() {
	# The stamp is the pom's checksum: editing the pom fetches again.
	local stamp
	stamp="$(sha256sum "$pom" | cut -d' ' -f1)"
	if [[ -f "$libs/.stamp" && "$(cat "$libs/.stamp")" == "$stamp" ]]; then
		echo "$libs"
		return
	fi
	command -v mvn >/dev/null || { echo "kafka.sh: mvn is not installed (Debian: maven)" >&2; exit 1; }
	rm -rf "$libs.tmp"
	mkdir -p "$cache"
	mvn -B -q -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs.tmp" >&2
	rm -rf "$libs"
	mv "$libs.tmp" "$libs"
	echo "$stamp" >"$libs/.stamp"
	echo "$libs"
}

# config DATA_DIR PORT CTRL_PORT writes DATA_DIR/server.properties and log4j2.yaml.
config() {
	local dir=$1 port=$2 ctrl=$3
	mkdir -p "$dir/log"
	cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$ctrl
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$ctrl
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/log
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1
default.replication.factor=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.retention.hours=24
PROPS
	cat >"$dir/log4j2.yaml" <<'LOG'
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaServer
        level: INFO
      - name: kafka.server.KafkaRaftServer
        level: INFO
      - name: kafka.Kafka
        level: INFO
LOG
}

jvm() {
	local dir=$1
	shift
	exec "$java" -Xms128m -Xmx"${KAFKA_HEAP:-512m}" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
		-Djava.awt.headless=true -Dlog4j2.configurationFile="$dir/log4j2.yaml" \
		-cp "$libs/*" "$@"
}

run() {
	local dir=$1 port=$2 ctrl=$3
	[[ -d "$libs" ]] || fetch >/dev/null
	dir="$(mkdir -p "$dir" && cd "$dir" && pwd)"
	config "$dir" "$port" "$ctrl"
	if [[ ! -f "$dir/log/meta.properties" ]]; then
		local id
		id="$( (jvm "$dir" kafka.tools.StorageTool random-uuid) | tail -n1)"
		(jvm "$dir" kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties") >/dev/null
	fi
	jvm "$dir" kafka.Kafka "$dir/server.properties"
}

start() {
	local dir=$1 port=$2 ctrl=$3
	fetch >&2 # before the start-up clock runs
	mkdir -p "$dir"
	"$0" run "$dir" "$port" "$ctrl" >"$dir/broker.out" 2>&1 &
	local pid=$!
	for _ in $(seq 1 120); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "kafka.sh: the broker exited during start-up:" >&2
			cat "$dir/broker.out" >&2
			exit 1
		fi
		if grep -q "Kafka Server started\|KafkaRaftServer.*started\|Transition from STARTING to STARTED" "$dir/broker.out" 2>/dev/null; then
			echo "$pid"
			return
		fi
		sleep 0.5
	done
	echo "kafka.sh: the broker did not start within 60s:" >&2
	cat "$dir/broker.out" >&2
	kill "$pid" 2>/dev/null || true
	exit 1
}

case "${1:-}" in
fetch) fetch ;;
run) run "${2:?data dir}" "${3:?port}" "${4:?controller port}" ;;
start) start "${2:?data dir}" "${3:?port}" "${4:?controller port}" ;;
*)
	sed -n '2,14p' "$0" >&2
	exit 2
	;;
esac
