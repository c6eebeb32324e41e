// Command provisioner gives the embedded one-node cluster dynamic volumes:
// it binds every pending PersistentVolumeClaim of the scaleplane-local
// StorageClass to a new hostPath PersistentVolume under a directory of its
// own, and deletes the volume and its directory once the claim is gone.
//
// Kubernetes ships a hostPath provisioner for tests in the controller
// manager, but it creates directories root-owned with mode 0750, which the
// non-root pods of the restricted Pod Security profile cannot write (and
// the kubelet does not apply fsGroup to hostPath volumes). This one makes
// them world-writable with the sticky bit, as /tmp: the node is a
// developer's machine, and each directory is mounted into one claim's pods.
//
// It uses only the standard library (the cluster builds it with the go
// command, with no module download) and talks to the API server with the
// admin certificate, polling: a single node has few claims.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Provisioner is the name StorageClasses give to ask for these volumes.
const Provisioner = "scaleplane.dev/hostpath"

// pollEvery is how often claims are looked at: a pending claim waits at
// most this long for its volume.
const pollEvery = time.Second

func main() {
	server := flag.String("server", "", "API server URL")
	ca := flag.String("ca", "", "CA certificate of the API server (PEM)")
	cert := flag.String("cert", "", "client certificate (PEM)")
	key := flag.String("key", "", "client key (PEM)")
	dir := flag.String("dir", "", "directory holding one subdirectory per volume")
	flag.Parse()
	if *server == "" || *ca == "" || *cert == "" || *key == "" || *dir == "" {
		log.Fatal("provisioner: --server, --ca, --cert, --key and --dir are required")
	}
	client, err := newClient(*ca, *cert, *key)
	if err != nil {
		log.Fatalf("provisioner: %v", err)
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		log.Fatalf("provisioner: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	p := &provisioner{api: *server, http: client, dir: *dir}
	log.Printf("provisioner: serving %s volumes under %s", Provisioner, *dir)
	for {
		if err := p.reconcile(ctx); err != nil && ctx.Err() == nil {
			log.Printf("provisioner: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pollEvery):
		}
	}
}

func newClient(caFile, certFile, keyFile string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no certificate", caFile)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
	}}, nil
}

type provisioner struct {
	api  string
	http *http.Client
	dir  string
}

type meta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	UID         string            `json:"uid,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
}

type claim struct {
	Metadata meta `json:"metadata"`
	Spec     struct {
		AccessModes      []string `json:"accessModes"`
		StorageClassName *string  `json:"storageClassName"`
		VolumeName       string   `json:"volumeName"`
		VolumeMode       string   `json:"volumeMode"`
		Resources        struct {
			Requests map[string]string `json:"requests"`
		} `json:"resources"`
	} `json:"spec"`
	Status struct {
		Phase string `json:"phase"`
	} `json:"status"`
}

type volume struct {
	Metadata meta `json:"metadata"`
	Spec     struct {
		HostPath struct {
			Path string `json:"path"`
		} `json:"hostPath"`
	} `json:"spec"`
	Status struct {
		Phase string `json:"phase"`
	} `json:"status"`
}

// reconcile provisions a volume for every pending claim of our classes and
// deletes the released volumes it made.
func (p *provisioner) reconcile(ctx context.Context) error {
	classes, err := p.classes(ctx)
	if err != nil {
		return err
	}
	var claims struct{ Items []claim }
	if err := p.get(ctx, "/api/v1/persistentvolumeclaims", &claims); err != nil {
		return err
	}
	var errs []error
	for _, c := range claims.Items {
		if c.Status.Phase != "Pending" || c.Spec.VolumeName != "" || c.Spec.StorageClassName == nil || !classes[*c.Spec.StorageClassName] {
			continue
		}
		if err := p.provision(ctx, c); err != nil {
			errs = append(errs, fmt.Errorf("claim %s/%s: %w", c.Metadata.Namespace, c.Metadata.Name, err))
		}
	}
	var volumes struct{ Items []volume }
	if err := p.get(ctx, "/api/v1/persistentvolumes", &volumes); err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, v := range volumes.Items {
		if v.Metadata.Annotations["pv.kubernetes.io/provisioned-by"] != Provisioner || v.Status.Phase != "Released" {
			continue
		}
		if err := p.release(ctx, v); err != nil {
			errs = append(errs, fmt.Errorf("volume %s: %w", v.Metadata.Name, err))
		}
	}
	return errors.Join(errs...)
}

// classes are the StorageClasses that name this provisioner.
func (p *provisioner) classes(ctx context.Context) (map[string]bool, error) {
	var list struct {
		Items []struct {
			Metadata    meta   `json:"metadata"`
			Provisioner string `json:"provisioner"`
		}
	}
	if err := p.get(ctx, "/apis/storage.k8s.io/v1/storageclasses", &list); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, c := range list.Items {
		if c.Provisioner == Provisioner {
			out[c.Metadata.Name] = true
		}
	}
	return out, nil
}

// provision makes the claim's directory and a volume bound to the claim
// (claimRef with its uid, so no other claim can take it).
func (p *provisioner) provision(ctx context.Context, c claim) error {
	if c.Spec.VolumeMode == "Block" {
		return errors.New("block volumes are not supported: hostPath is a directory")
	}
	size := c.Spec.Resources.Requests["storage"]
	if size == "" {
		return errors.New("no storage request")
	}
	name := "pvc-" + c.Metadata.UID
	path := filepath.Join(p.dir, c.Metadata.Namespace+"-"+c.Metadata.Name+"-"+c.Metadata.UID[:8])
	if err := os.MkdirAll(path, 0o755); err != nil {
		return err
	}
	// Chmod after MkdirAll: the umask would have cleared the bits.
	if err := os.Chmod(path, 0o1777); err != nil {
		return err
	}
	pv := map[string]any{
		"apiVersion": "v1", "kind": "PersistentVolume",
		"metadata": map[string]any{
			"name":        name,
			"annotations": map[string]string{"pv.kubernetes.io/provisioned-by": Provisioner},
			"labels":      map[string]string{"app.kubernetes.io/managed-by": "scaleplane-provisioner"},
		},
		"spec": map[string]any{
			"capacity":                      map[string]string{"storage": size},
			"accessModes":                   c.Spec.AccessModes,
			"persistentVolumeReclaimPolicy": "Delete",
			"storageClassName":              *c.Spec.StorageClassName,
			"hostPath":                      map[string]string{"path": path, "type": "Directory"},
			"claimRef": map[string]string{
				"apiVersion": "v1", "kind": "PersistentVolumeClaim",
				"namespace": c.Metadata.Namespace, "name": c.Metadata.Name, "uid": c.Metadata.UID,
			},
		},
	}
	err := p.send(ctx, http.MethodPost, "/api/v1/persistentvolumes", pv)
	if err != nil && !isConflict(err) {
		return err
	}
	if err == nil {
		log.Printf("provisioner: %s for %s/%s (%s) at %s", name, c.Metadata.Namespace, c.Metadata.Name, size, path)
	}
	return nil
}

// release deletes a volume whose claim is gone, then its directory.
func (p *provisioner) release(ctx context.Context, v volume) error {
	if err := p.send(ctx, http.MethodDelete, "/api/v1/persistentvolumes/"+v.Metadata.Name, nil); err != nil && !isNotFound(err) {
		return err
	}
	if path := v.Spec.HostPath.Path; path != "" && strings.HasPrefix(filepath.Clean(path), filepath.Clean(p.dir)+string(filepath.Separator)) {
		if err := os.RemoveAll(path); err != nil {
			return err
		}
	}
	log.Printf("provisioner: %s released and removed", v.Metadata.Name)
	return nil
}

// statusError is a non-2xx answer of the API server.
type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("API server answered %d: %s", e.code, e.body)
}

func isConflict(err error) bool {
	var s *statusError
	return errors.As(err, &s) && s.code == http.StatusConflict
}

func isNotFound(err error) bool {
	var s *statusError
	return errors.As(err, &s) && s.code == http.StatusNotFound
}

func (p *provisioner) get(ctx context.Context, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.api+path, nil)
	if err != nil {
		return err
	}
	body, err := p.do(req)
	if err != nil {
		return err
	}
	return json.Unmarshal(body, into)
}

func (p *provisioner) send(ctx context.Context, method, path string, obj any) error {
	var body io.Reader
	if obj != nil {
		b, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.api+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	_, err = p.do(req)
	return err
}

func (p *provisioner) do(req *http.Request) ([]byte, error) {
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, &statusError{code: resp.StatusCode, body: strings.TrimSpace(string(b))}
	}
	return b, nil
}
