// Command kube-apiserver is the upstream Kubernetes API server, unchanged: Tessera's tests
// run it on a real etcd to check what the admission webhook and `tessera inject` produce.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
