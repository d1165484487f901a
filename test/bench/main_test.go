package main

import (
	"slices"
	"strings"
	"testing"
)

func TestSplitNamesTheBusAndInstancesOfEveryVariant(t *testing.T) {
	tests := []struct {
		name, base, bus string
		instances       int
	}{
		{"broadcast", scenarioBroadcast, busMemory, 1},
		{"idle", scenarioIdle, busMemory, 1},
		{"redis-per-user", scenarioPerUser, busRedis, redisInstances},
		{"redis-bus", scenarioBus, busRedis, redisInstances},
		{"kafka-per-user-batch", scenarioPerUserBatch, busKafka, kafkaInstances},
		{"kafka-bus", scenarioBus, busKafka, kafkaInstances},
	}
	for _, tt := range tests {
		base, bus, n := split(tt.name)
		if base != tt.base || bus != tt.bus || n != tt.instances {
			t.Errorf("split(%q) = %q, %q, %d; want %q, %q, %d", tt.name, base, bus, n, tt.base, tt.bus, tt.instances)
		}
	}
}

// noBroker are flags under which no Kafka broker can be had: none given, and
// no java to start one.
var noBroker = []string{"-kafka-brokers", "", "-java", "/nonexistent/java"}

func TestParseFlagsLeavesTheKafkaVariantOutWithoutABroker(t *testing.T) {
	c, err := parseFlags(noBroker)
	if err != nil {
		t.Fatal(err)
	}
	if usesKafka(c.scenarios) {
		t.Errorf("default scenarios without a broker: %v; want no kafka-*", c.scenarios)
	}
	if !slices.Contains(c.scenarios, scenarioBroadcast) {
		t.Errorf("default scenarios: %v; want broadcast still there", c.scenarios)
	}
}

func TestParseFlagsRefusesAnExplicitKafkaScenarioWithoutABroker(t *testing.T) {
	_, err := parseFlags(append(slices.Clone(noBroker), "-scenarios", "broadcast,kafka-bus"))
	if err == nil || !strings.Contains(err.Error(), "kafka-bus needs a Kafka broker") {
		t.Fatalf("parseFlags: %v; want kafka-bus needs a Kafka broker", err)
	}
}

func TestParseFlagsKeepsTheKafkaVariantWithBrokersGiven(t *testing.T) {
	c, err := parseFlags([]string{"-kafka-brokers", "127.0.0.1:9092", "-java", "/nonexistent/java"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"kafka-broadcast", "kafka-per-user", "kafka-per-user-batch", "kafka-bus"} {
		if !slices.Contains(c.scenarios, s) {
			t.Errorf("default scenarios with brokers: %v; want %s", c.scenarios, s)
		}
	}
	_, err = parseFlags([]string{"-kafka-brokers", "127.0.0.1:9092", "-servers", "node", "-scenarios", "kafka-broadcast"})
	if err == nil || !strings.Contains(err.Error(), "web3-socket only") {
		t.Fatalf("kafka-broadcast with -servers node: %v; want an error saying it runs web3-socket only", err)
	}
}

func TestParseFlagsTakesExtraWeb3SettingsAsKeyValuePairs(t *testing.T) {
	c, err := parseFlags(append(slices.Clone(noBroker), "-scenarios", "broadcast", "-web3-env", "IDEMPOTENCY_WINDOW=0s,GOMAXPROCS=1"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"IDEMPOTENCY_WINDOW=0s", "GOMAXPROCS=1"}; !slices.Equal(c.web3Env, want) {
		t.Fatalf("web3Env %v, want %v", c.web3Env, want)
	}
	_, err = parseFlags(append(slices.Clone(noBroker), "-scenarios", "broadcast", "-web3-env", "GOMAXPROCS"))
	if err == nil || !strings.Contains(err.Error(), `-web3-env: "GOMAXPROCS": want KEY=VALUE`) {
		t.Fatalf("parseFlags: %v; want the pair without = refused", err)
	}
	cmd := web3Target("/bin/web3", c.web3Env).command(instance{port: 1, secret: "s", apiKey: "k", id: "a"})
	if got := cmd.Env[len(cmd.Env)-2:]; !slices.Equal(got, c.web3Env) {
		t.Fatalf("instance environment ends %v, want the extra settings last (they win)", got)
	}
}
