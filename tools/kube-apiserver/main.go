// Command kube-apiserver is the genuine Kubernetes API server
// (k8s.io/kubernetes/cmd/kube-apiserver/app) with a single-member etcd
// (go.etcd.io/etcd/server/v3/embed) running in the same process. It exists so
// that serve-gateway's tests can run against a real API server without a
// cluster, a container runtime or a separately installed etcd.
//
// Flags of this wrapper start with --embedded- (all others go to kube-apiserver unchanged):
//
//	--embedded-etcd-data-dir=DIR     start the embedded etcd with its data in DIR and
//	                                 point the API server at it (adds --etcd-servers).
//	                                 Without it no etcd is started and the API server
//	                                 needs its own --etcd-servers.
//	--embedded-etcd-log-level=LEVEL  etcd's zap log level (default "error").
//	--embedded-etcd-fsync[=BOOL]     fsync etcd's WAL and database (default false:
//	                                 test data survives a process kill, not a machine crash).
//	--embedded-exit-with-parent[=BOOL]
//	                                 shut down (as on SIGTERM) when the parent process
//	                                 dies, so a killed test run leaves no server behind.
//
// etcd listens on free loopback ports chosen at each start; peers are never
// dialed (one member), so a restart on the same data dir with other ports works.
package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // for timeZone support in CronJob, as in the upstream main

	"go.etcd.io/etcd/server/v3/embed"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format, as in the upstream main
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as in the upstream main
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as in the upstream main
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

const prefix = "--embedded-"

type options struct {
	dataDir        string
	logLevel       string
	fsync          bool
	exitWithParent bool
}

// boolFlags may be given without a value ("--embedded-etcd-fsync" means true).
var boolFlags = map[string]bool{"etcd-fsync": true, "exit-with-parent": true}

// splitArgs takes this wrapper's flags out of args ("--name=value" or "--name value").
func splitArgs(args []string) (options, []string, error) {
	opts := options{logLevel: "error"}
	rest := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if !strings.HasPrefix(arg, prefix) {
			rest = append(rest, arg)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(arg, prefix), "=")
		if !hasValue && !boolFlags[name] {
			if i+1 >= len(args) {
				return opts, nil, fmt.Errorf("flag %s%s needs a value", prefix, name)
			}
			i++
			value = args[i]
		}
		switch name {
		case "etcd-data-dir":
			opts.dataDir = value
		case "etcd-log-level":
			opts.logLevel = value
		case "etcd-fsync", "exit-with-parent":
			if !hasValue {
				value = "true"
			}
			b, err := strconv.ParseBool(value)
			if err != nil {
				return opts, nil, fmt.Errorf("flag %s%s: %v", prefix, name, err)
			}
			if name == "etcd-fsync" {
				opts.fsync = b
			} else {
				opts.exitWithParent = b
			}
		default:
			return opts, nil, fmt.Errorf("unknown flag %s%s", prefix, name)
		}
	}
	return opts, rest, nil
}

// freeLoopbackURL reserves a free port on 127.0.0.1 and releases it for etcd to bind.
func freeLoopbackURL() (url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return url.URL{}, err
	}
	defer l.Close()
	return url.URL{Scheme: "http", Host: l.Addr().String()}, nil
}

func startEtcd(opts options) (*embed.Etcd, string, error) {
	if err := os.MkdirAll(opts.dataDir, 0o700); err != nil {
		return nil, "", err
	}
	peer, err := freeLoopbackURL()
	if err != nil {
		return nil, "", err
	}
	client, err := freeLoopbackURL()
	if err != nil {
		return nil, "", err
	}
	cfg := embed.NewConfig()
	cfg.Name = "embedded"
	cfg.Dir = opts.dataDir
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = opts.logLevel
	cfg.LogOutputs = []string{"stderr"}
	cfg.UnsafeNoFsync = !opts.fsync
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, "", fmt.Errorf("embedded etcd failed: %v", err)
	case <-time.After(2 * time.Minute):
		e.Close()
		return nil, "", fmt.Errorf("embedded etcd not ready after 2 minutes")
	}
	return e, client.String(), nil
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// exitWithParent sends this process SIGTERM once its parent is gone (it is
// then re-parented), and exits outright if the graceful shutdown hangs.
func exitWithParent() {
	parent := os.Getppid()
	go func() {
		for range time.Tick(500 * time.Millisecond) {
			if os.Getppid() == parent {
				continue
			}
			fmt.Fprintf(os.Stderr, "kube-apiserver: parent process %d is gone; shutting down\n", parent)
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
			time.Sleep(30 * time.Second)
			os.Exit(1)
		}
	}()
}

func main() {
	opts, args, err := splitArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "kube-apiserver:", err)
		os.Exit(2)
	}
	if opts.exitWithParent {
		exitWithParent()
	}
	var etcd *embed.Etcd
	if opts.dataDir != "" {
		var clientURL string
		etcd, clientURL, err = startEtcd(opts)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kube-apiserver: starting embedded etcd:", err)
			os.Exit(1)
		}
		go func() {
			if err, ok := <-etcd.Err(); ok && err != nil {
				fmt.Fprintln(os.Stderr, "kube-apiserver: embedded etcd stopped:", err)
				os.Exit(1)
			}
		}()
		if !hasFlag(args, "--etcd-servers") {
			args = append(args, "--etcd-servers="+clientURL)
		}
	}
	command := app.NewAPIServerCommand()
	command.SetArgs(args)
	code := cli.Run(command)
	if etcd != nil {
		etcd.Close()
	}
	os.Exit(code)
}
