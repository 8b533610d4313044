// Command kube-apiserver is upstream's kube-apiserver entry point, built from Go modules so
// CoucheStor's integration tests can run a real API server on loopback.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
