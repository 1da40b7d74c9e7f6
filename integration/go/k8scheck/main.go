// k8scheck decodes Kubernetes manifests strictly with the API's own Go
// types (an unknown or duplicate field is an error, as with kubectl's
// strict validation) and checks what gort's sidecar deployment promises:
// a shared pid namespace, gort non-root on a read-only root with exactly
// the capabilities it needs, resources, probes on /health, the service
// exporting to gort over the pod's loopback, and gort's config mounted.
//
// Usage: k8scheck FILE...; one line per object on success; the reasons and
// exit status 1 otherwise.
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// The capabilities gort needs on Linux 6.16 and later (README, "Least privilege").
var gortCaps = []string{"SYS_ADMIN", "SYS_PTRACE"}

const (
	telemetryPort = 8888
	serviceOTLP   = "http://localhost:4317"
)

type checker struct {
	problems   []string
	configMaps map[string]corev1.ConfigMap
	deploys    []named[appsv1.Deployment]
}

type named[T any] struct {
	file string
	obj  T
}

func (c *checker) fail(file, format string, args ...any) {
	c.problems = append(c.problems, file+": "+fmt.Sprintf(format, args...))
}

// documents splits a multi-document YAML file at its "---" lines.
func documents(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(data, []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(d))) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

func stripComments(d []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(d, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

func (c *checker) decode(file string, doc []byte) {
	var meta metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		c.fail(file, "not YAML: %v", err)
		return
	}
	strict := func(into any) bool {
		if err := yaml.UnmarshalStrict(doc, into); err != nil {
			c.fail(file, "%s: %v", meta.Kind, err)
			return false
		}
		return true
	}
	switch meta.APIVersion + " " + meta.Kind {
	case "apps/v1 Deployment":
		var d appsv1.Deployment
		if strict(&d) {
			c.deploys = append(c.deploys, named[appsv1.Deployment]{file, d})
			fmt.Printf("decoded %s Deployment/%s\n", file, d.Name)
		}
	case "v1 ConfigMap":
		var m corev1.ConfigMap
		if strict(&m) {
			c.configMaps[m.Name] = m
			fmt.Printf("decoded %s ConfigMap/%s\n", file, m.Name)
		}
	case "v1 Service":
		var s corev1.Service
		if strict(&s) {
			fmt.Printf("decoded %s Service/%s\n", file, s.Name)
		}
	default:
		c.fail(file, "unexpected kind %q %q", meta.APIVersion, meta.Kind)
	}
}

// gortContainer finds gort among the pod's containers; native says it is
// an init container that keeps running (a native sidecar).
func gortContainer(spec *corev1.PodSpec) (ctr *corev1.Container, native bool) {
	for i := range spec.Containers {
		if spec.Containers[i].Name == "gort" {
			return &spec.Containers[i], false
		}
	}
	for i := range spec.InitContainers {
		if spec.InitContainers[i].Name == "gort" {
			return &spec.InitContainers[i], true
		}
	}
	return nil, false
}

func (c *checker) checkDeployment(file string, d *appsv1.Deployment) {
	spec := &d.Spec.Template.Spec
	g, native := gortContainer(spec)
	if g == nil {
		return // not a deployment with gort (the Collector)
	}
	kind := "sidecar container"
	if native {
		kind = "native sidecar"
		if g.RestartPolicy == nil || *g.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			c.fail(file, "gort is an init container without restartPolicy: Always: it would block the pod's start")
		}
	}
	if spec.ShareProcessNamespace == nil || !*spec.ShareProcessNamespace {
		c.fail(file, "shareProcessNamespace must be true: gort must see the service's processes")
	}
	sc := g.SecurityContext
	if sc == nil {
		c.fail(file, "gort has no securityContext")
		return
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		c.fail(file, "gort must run as a non-root user (runAsNonRoot, runAsUser != 0)")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		c.fail(file, "gort's root filesystem must be read-only")
	}
	if sc.Privileged != nil && *sc.Privileged {
		c.fail(file, "gort must not be privileged")
	}
	var added, dropped []string
	if sc.Capabilities != nil {
		for _, a := range sc.Capabilities.Add {
			added = append(added, string(a))
		}
		for _, d := range sc.Capabilities.Drop {
			dropped = append(dropped, string(d))
		}
	}
	slices.Sort(added)
	if !slices.Equal(added, gortCaps) {
		c.fail(file, "gort's capabilities.add is %v; it needs exactly %v", added, gortCaps)
	}
	if !slices.Equal(dropped, []string{"ALL"}) {
		c.fail(file, "gort's capabilities.drop is %v, not [ALL]", dropped)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := g.Resources.Requests[r]; !ok || q.IsZero() {
			c.fail(file, "gort has no %s request", r)
		}
	}
	if q, ok := g.Resources.Limits[corev1.ResourceMemory]; !ok || q.IsZero() {
		c.fail(file, "gort has no memory limit")
	}
	port := map[string]int32{}
	for _, p := range g.Ports {
		port[p.Name] = p.ContainerPort
	}
	for what, probe := range map[string]*corev1.Probe{"readiness": g.ReadinessProbe, "liveness": g.LivenessProbe} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != "/health" {
			c.fail(file, "gort's %s probe is not an HTTP GET of /health", what)
			continue
		}
		p := probe.HTTPGet.Port
		if p.IntVal != telemetryPort && port[p.StrVal] != telemetryPort {
			c.fail(file, "gort's %s probe does not go to the telemetry port %d", what, telemetryPort)
		}
	}
	c.checkConfig(file, spec, g)
	exporting := false
	for _, ctr := range spec.Containers {
		for _, e := range ctr.Env {
			if ctr.Name != "gort" && e.Name == "OTEL_EXPORTER_OTLP_ENDPOINT" {
				exporting = true
				if e.Value != serviceOTLP {
					c.fail(file, "container %s exports to %q, not gort at %s", ctr.Name, e.Value, serviceOTLP)
				}
			}
		}
	}
	if !exporting {
		c.fail(file, "no container sets OTEL_EXPORTER_OTLP_ENDPOINT to gort")
	}
	fmt.Printf("ok %s Deployment/%s: gort as a %s\n", file, d.Name, kind)
}

// checkConfig follows gort's --config to its ConfigMap and checks that a
// telemetry endpoint reachable from outside the pod has its token mounted.
func (c *checker) checkConfig(file string, spec *corev1.PodSpec, g *corev1.Container) {
	i := slices.Index(g.Args, "--config")
	if i < 0 || i+1 >= len(g.Args) {
		c.fail(file, "gort is not given --config")
		return
	}
	path := g.Args[i+1]
	mounted := func(path string) (corev1.Volume, bool) {
		for _, m := range g.VolumeMounts {
			if strings.HasPrefix(path, m.MountPath+"/") {
				for _, v := range spec.Volumes {
					if v.Name == m.Name {
						return v, true
					}
				}
			}
		}
		return corev1.Volume{}, false
	}
	v, ok := mounted(path)
	if !ok || v.ConfigMap == nil {
		c.fail(file, "gort's --config %s is not on a mounted ConfigMap", path)
		return
	}
	cm, ok := c.configMaps[v.ConfigMap.Name]
	if !ok {
		c.fail(file, "ConfigMap %s is in none of the files", v.ConfigMap.Name)
		return
	}
	var config struct {
		Telemetry struct {
			Endpoint        string `json:"endpoint"`
			BearerTokenFile string `json:"bearer_token_file"`
		} `json:"telemetry"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data[filepath.Base(path)]), &config); err != nil {
		c.fail(file, "ConfigMap %s: %s: %v", cm.Name, filepath.Base(path), err)
		return
	}
	if strings.HasPrefix(config.Telemetry.Endpoint, "127.") {
		c.fail(file, "gort's telemetry endpoint is on loopback: the kubelet's probes cannot reach it")
	}
	if t := config.Telemetry.BearerTokenFile; t == "" {
		c.fail(file, "gort's telemetry endpoint is reachable from outside the pod without a token")
	} else if v, ok := mounted(t); !ok || v.Secret == nil {
		c.fail(file, "gort's token %s is not on a mounted Secret", t)
	}
}

func main() {
	c := &checker{configMaps: map[string]corev1.ConfigMap{}}
	for _, file := range os.Args[1:] {
		data, err := os.ReadFile(file)
		if err != nil {
			c.fail(file, "%v", err)
			continue
		}
		for _, doc := range documents(data) {
			c.decode(filepath.Base(file), doc)
		}
	}
	for i := range c.deploys {
		c.checkDeployment(c.deploys[i].file, &c.deploys[i].obj)
	}
	if len(c.problems) > 0 {
		for _, p := range c.problems {
			fmt.Println("problem:", p)
		}
		os.Exit(1)
	}
}
