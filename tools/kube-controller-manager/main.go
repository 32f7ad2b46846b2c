// Command kube-controller-manager is the genuine Kubernetes controller manager
// (k8s.io/kubernetes/cmd/kube-controller-manager/app), built from Go modules
// for serve-gateway's KubeRay suite. The suite runs only the endpoints,
// endpointslice and garbage-collector controllers: KubeRay v1.5.0 counts a
// RayService's Serve endpoints from the core/v1 Endpoints of <rs>-serve-svc,
// and deletes an old cluster's pods through owner references.
//
// One flag of this wrapper (all others go to kube-controller-manager unchanged):
//
//	--embedded-exit-with-parent  shut down when the parent process dies, so a
//	                             killed test run leaves no controller behind.
package main

import (
	"fmt"
	"os"
	"syscall"
	"time"
	_ "time/tzdata" // for timeZone support in CronJob, as in the upstream main

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format, as in the upstream main
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as in the upstream main
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as in the upstream main
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

const exitWithParentFlag = "--embedded-exit-with-parent"

// exitWithParent sends this process SIGTERM once its parent is gone (it is
// then re-parented), and exits outright if the graceful shutdown hangs.
func exitWithParent() {
	parent := os.Getppid()
	go func() {
		for range time.Tick(500 * time.Millisecond) {
			if os.Getppid() == parent {
				continue
			}
			fmt.Fprintf(os.Stderr, "kube-controller-manager: parent process %d is gone; shutting down\n", parent)
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
			time.Sleep(10 * time.Second)
			os.Exit(1)
		}
	}()
}

func main() {
	args := make([]string, 0, len(os.Args)-1)
	for _, a := range os.Args[1:] {
		if a == exitWithParentFlag {
			exitWithParent()
			continue
		}
		args = append(args, a)
	}
	command := app.NewControllerManagerCommand()
	command.SetArgs(args)
	os.Exit(cli.Run(command))
}
