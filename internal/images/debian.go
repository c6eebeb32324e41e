package images

// Debian-packaged servers (redis-server, nginx, haproxy, PostgreSQL,
// PgBouncer, Prometheus, the JRE for Kafka) as images made without Docker or a
// registry: one shared base layer, made once with `debootstrap
// --variant=minbase` from the Debian archive, and one layer per server holding
// what `apt-get install` of its package changed in a copy of that base. Every
// server image is base + its own layer, so the node stores the base once.
//
// Both kinds of layer are cached in the tool cache (internal/toolchain) and
// written reproducibly: entries in a fixed order, every time set to the epoch,
// numeric owners kept and names dropped, device nodes left out (the runtime
// provides /dev). A cached layer is used as it is: its digest only changes when
// the recipe version, the suite or (for a server) the base digest or the spec
// does, so the same cache gives the same image digests.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/scaleplane/scaleplane/internal/progress"
	"github.com/scaleplane/scaleplane/internal/toolchain"
)

const (
	// DebianSuite is the Debian release the base is made from.
	DebianSuite = "bookworm"
	// DebianMirror is the archive debootstrap and apt fetch from.
	DebianMirror = "http://deb.debian.org/debian"
	// DebianSecurityMirror carries the suite's security updates, applied to
	// the base before its layer is made.
	DebianSecurityMirror = "http://deb.debian.org/debian-security"
	// debianBaseRecipe and debianServerRecipe version the steps below: bump
	// one when its steps change, so the cache makes new layers instead of
	// reusing ones made the old way.
	debianBaseRecipe   = "2"
	debianServerRecipe = "3"
	// debianPath is the PATH of every Debian image (Debian's default for
	// root, since the servers live in sbin directories too).
	debianPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// layerFile and layerMetaFile hold a cached layer: the gzipped tar and its
	// digests and sizes, so a cache hit needs no hashing.
	layerFile     = "layer.tar.gz"
	layerMetaFile = "layer.json"
)

// DebianSpec is one Debian-packaged server image.
type DebianSpec struct {
	// Name names the image (scaleplane.local/debian-<name>) and its cache
	// directory.
	Name string
	// Packages are installed with apt-get install --no-install-recommends.
	Packages []string
	// User is the account the server runs as, created by its package; the
	// image config carries it as the numeric uid:gid read from the image's
	// /etc/passwd, so Kubernetes' runAsNonRoot can check it.
	User string
	// Entrypoint and Cmd are the image's (exec form: no shell involved).
	Entrypoint []string
	Cmd        []string
	// Env are KEY=VALUE entries; a PATH here replaces the default.
	Env []string
	// Workdir is the working directory (default /).
	Workdir string
	// Ports are documentation-only exposed ports, "6379/tcp".
	Ports []string
	// Files are written into the root filesystem before the install
	// (path -> content), to steer maintainer scripts.
	Files map[string]string
	// Exclude are dpkg path-exclude patterns for this image: files of the
	// installed packages that the server does not use and the image should
	// not carry. They stay in the image's dpkg configuration.
	Exclude []string
	// Proc mounts a proc filesystem in the chroot during the install, for
	// maintainer scripts that cannot do without (the JRE's runs java).
	Proc bool
}

// DebianServers are the Debian-packaged servers scaleplane builds images of.
// The components run them with their own command (nginx -c ..., haproxy -db
// -f ..., redis-server <args>), found on PATH; Entrypoint/Cmd are the
// defaults when a pod gives none.
var DebianServers = []DebianSpec{
	{Name: "redis", Packages: []string{"redis-server"}, User: "redis",
		Entrypoint: []string{"/usr/bin/redis-server"}, Workdir: "/var/lib/redis", Ports: []string{"6379/tcp"}},
	{Name: "nginx", Packages: []string{"nginx-light"}, User: "www-data",
		Entrypoint: []string{"/usr/sbin/nginx"}, Cmd: []string{"-g", "daemon off;"}},
	{Name: "haproxy", Packages: []string{"haproxy"}, User: "haproxy",
		Entrypoint: []string{"/usr/sbin/haproxy"}, Cmd: []string{"-db", "-f", "/etc/haproxy/haproxy.cfg"}},
	{Name: "pgbouncer", Packages: []string{"pgbouncer"}, User: "postgres",
		Entrypoint: []string{"/usr/sbin/pgbouncer"}, Cmd: []string{"/etc/pgbouncer/pgbouncer.ini"}, Ports: []string{"6432/tcp"},
		Files: postgresAccount},
	{Name: "postgresql", Packages: []string{"postgresql-15"}, User: "postgres",
		Entrypoint: []string{"/usr/lib/postgresql/15/bin/postgres"},
		Env:        []string{"PATH=/usr/lib/postgresql/15/bin:" + debianPath, "LANG=C.UTF-8", "PGDATA=/var/lib/postgresql/data"},
		Workdir:    "/var/lib/postgresql", Ports: []string{"5432/tcp"},
		// The data directory lives on the pod's volume; no cluster in the
		// image. The postgres account is 999:999 (postgresAccount).
		Files: withPostgresAccount(map[string]string{"/etc/postgresql-common/createcluster.d/scaleplane.conf": "create_main_cluster = false\n"}),
		// LLVM is only the JIT's (postgresql-15 depends on it): without
		// llvmjit.so PostgreSQL runs with JIT off, and the image is 130 MB
		// smaller.
		Exclude: []string{"/usr/lib/postgresql/15/lib/llvmjit*", "/usr/lib/postgresql/15/lib/bitcode/*",
			"/usr/lib/x86_64-linux-gnu/libLLVM-*", "/usr/lib/x86_64-linux-gnu/libz3.so.*"}},
	{Name: "prometheus", Packages: []string{"prometheus"}, User: "prometheus",
		Entrypoint: []string{"/usr/bin/prometheus"},
		Cmd:        []string{"--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/var/lib/prometheus/metrics2"},
		Workdir:    "/var/lib/prometheus", Ports: []string{"9090/tcp"},
		// 220 MB of raw time zone tables; the web UI loads the bundled
		// moment-timezone-with-data.min.js.
		Exclude: []string{"/usr/share/javascript/moment-timezone/data/*"}},
	// The JRE Kafka's image builds on; Kafka's own user and jars are a layer
	// above it.
	{Name: "jre", Packages: []string{"openjdk-17-jre-headless"}, User: "nobody",
		Entrypoint: []string{"/usr/bin/java"}, Proc: true},
}

// postgresAccount pre-seeds the postgres account as uid and gid 999 in the
// PostgreSQL and PgBouncer images, before postgresql-common's postinst runs:
// it creates the account only when `getent passwd postgres` finds none, so
// the seeded one is kept. Left to adduser, the uid is the first free system
// id (100 today), which moves whenever another package creates an account
// first; 999 is fixed, and it is the uid the official postgres image uses,
// so components/postgres runs pods as 999 with either image and a volume
// initialised by one is readable by the other. Pinning it here is simpler
// than carrying the image's uid into the stack's config. initdb and the
// server need the running uid in /etc/passwd ("could not look up effective
// user ID"), so a pod uid without an entry is not an option. The files are
// bookworm's base-passwd masters (what debootstrap's base holds) plus the
// one account; only passwd and group are seeded: writeFiles makes files
// 0644, wrong for shadow, and a system account needs no shadow entry.
var postgresAccount = map[string]string{
	"/etc/passwd": `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
sys:x:3:3:sys:/dev:/usr/sbin/nologin
sync:x:4:65534:sync:/bin:/bin/sync
games:x:5:60:games:/usr/games:/usr/sbin/nologin
man:x:6:12:man:/var/cache/man:/usr/sbin/nologin
lp:x:7:7:lp:/var/spool/lpd:/usr/sbin/nologin
mail:x:8:8:mail:/var/mail:/usr/sbin/nologin
news:x:9:9:news:/var/spool/news:/usr/sbin/nologin
uucp:x:10:10:uucp:/var/spool/uucp:/usr/sbin/nologin
proxy:x:13:13:proxy:/bin:/usr/sbin/nologin
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
backup:x:34:34:backup:/var/backups:/usr/sbin/nologin
list:x:38:38:Mailing List Manager:/var/list:/usr/sbin/nologin
irc:x:39:39:ircd:/run/ircd:/usr/sbin/nologin
_apt:x:42:65534::/nonexistent:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
postgres:x:999:999:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash
`,
	"/etc/group": `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
news:x:9:
uucp:x:10:
man:x:12:
proxy:x:13:
kmem:x:15:
dialout:x:20:
fax:x:21:
voice:x:22:
cdrom:x:24:
floppy:x:25:
tape:x:26:
sudo:x:27:
audio:x:29:
dip:x:30:
www-data:x:33:
backup:x:34:
operator:x:37:
list:x:38:
irc:x:39:
src:x:40:
shadow:x:42:
utmp:x:43:
video:x:44:
sasl:x:45:
plugdev:x:46:
staff:x:50:
games:x:60:
users:x:100:
nogroup:x:65534:
postgres:x:999:
`,
}

// withPostgresAccount adds postgresAccount to a spec's files.
func withPostgresAccount(files map[string]string) map[string]string {
	for p, c := range postgresAccount {
		files[p] = c
	}
	return files
}

// DebianServerSpec returns the spec named name from DebianServers.
func DebianServerSpec(name string) (DebianSpec, bool) {
	for _, s := range DebianServers {
		if s.Name == name {
			return s, true
		}
	}
	return DebianSpec{}, false
}

// DebianOptions say where the packages come from.
type DebianOptions struct {
	// Suite is the Debian release (default DebianSuite); it keys the base
	// cache.
	Suite string
	// Mirror and SecurityMirror are the archives (defaults DebianMirror,
	// DebianSecurityMirror). They are transport: the same suite from another
	// mirror is the same cache entry.
	Mirror         string
	SecurityMirror string
	// Log receives progress lines (default: discarded).
	Log io.Writer
}

func (o DebianOptions) withDefaults() DebianOptions {
	if o.Suite == "" {
		o.Suite = DebianSuite
	}
	if o.Mirror == "" {
		o.Mirror = DebianMirror
	}
	if o.SecurityMirror == "" {
		o.SecurityMirror = DebianSecurityMirror
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return o
}

// DebianLayer is one cached layer.
type DebianLayer struct {
	// Layer is the gzipped layer, read from the cache.
	Layer v1.Layer
	// Digest is the compressed blob's digest, DiffID the uncompressed tar's.
	Digest v1.Hash
	DiffID v1.Hash
	// Size and UncompressedSize are in bytes.
	Size             int64
	UncompressedSize int64
	// Dir is the cache directory.
	Dir string
	// Rootfs is the root filesystem the layer was made from (the base only:
	// server builds copy it; never change it).
	Rootfs string
	// Cached is true when the layer came from the cache, false when this
	// call built it (BuildTime then says how long that took).
	Cached    bool
	BuildTime time.Duration
}

// DebianImage is a server image: the shared base layer and the server's.
type DebianImage struct {
	Spec   DebianSpec
	Image  v1.Image
	Base   *DebianLayer
	Server *DebianLayer
	// User is the numeric uid:gid of Spec.User in the image.
	User string
	// Cached is true when neither layer had to be built.
	Cached bool
}

// layerMeta is layer.json.
type layerMeta struct {
	Digest           string `json:"digest"`
	DiffID           string `json:"diffID"`
	Size             int64  `json:"size"`
	UncompressedSize int64  `json:"uncompressedSize"`
	// User is the server's numeric uid:gid (server layers only).
	User string `json:"user,omitempty"`
}

// slimDpkg keeps documentation, manuals and translations out of the base
// and of every package installed on it, as Debian's own slim images do;
// copyright files stay.
const slimDpkg = `path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
`

// policyRCD refuses every service start: maintainer scripts must not start
// servers on the build machine.
const policyRCD = "#!/bin/sh\n# scaleplane image build: start no service\nexit 101\n"

// DebianBaseDir returns the base layer's cache directory for opts' suite
// and whether the base is built there, so a caller can tell a cheap
// DebianBase from one that runs debootstrap against the archive.
func DebianBaseDir(opts DebianOptions) (dir string, cached bool, err error) {
	opts = opts.withDefaults()
	dir, err = toolchain.Dir("debian-base", opts.Suite+"-"+debianBaseRecipe)
	if err != nil {
		return "", false, err
	}
	_, err = os.Stat(filepath.Join(dir, layerMetaFile))
	return dir, err == nil, nil
}

// DebianBase returns the shared base layer, running debootstrap the first
// time: a minbase system of opts.Suite, upgraded with the suite's updates
// and security fixes, slimmed (no docs, manuals or translations) and cleaned
// of apt lists, caches and logs. The cache keeps the root filesystem (server
// builds copy it), the apt lists it was upgraded with (server builds install
// from them, so their libraries match the base's) and the layer. It needs
// root (debootstrap, chroot) and the archive on the first call.
func DebianBase(ctx context.Context, opts DebianOptions) (*DebianLayer, error) {
	opts = opts.withDefaults()
	built := false
	var took time.Duration
	dir, err := toolchain.Ensure(ctx, "debian-base", opts.Suite+"-"+debianBaseRecipe, func(dir string) error {
		built = true
		start := time.Now()
		if err := buildDebianBase(ctx, opts, dir); err != nil {
			return err
		}
		took = time.Since(start)
		return nil
	})
	if err != nil {
		return nil, err // "building debian-base <suite>-<recipe> into DIR: ..." says which
	}
	l, _, err := loadLayer(dir)
	if err != nil {
		return nil, err
	}
	l.Rootfs = filepath.Join(dir, "rootfs")
	l.Cached, l.BuildTime = !built, took
	return l, nil
}

func buildDebianBase(ctx context.Context, opts DebianOptions, dir string) error {
	if os.Geteuid() != 0 {
		return errors.New("building Debian images needs root (debootstrap and chroot)")
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return errors.New("debootstrap not found (apt-get install debootstrap)")
	}
	t := progress.Start(ctx, "the Debian base", 3)
	return t.Done(buildDebianBaseSteps(ctx, opts, dir, t))
}

// buildDebianBaseSteps is buildDebianBase's work, a step of t each:
// debootstrap, the upgrade inside the base, the layer.
func buildDebianBaseSteps(ctx context.Context, opts DebianOptions, dir string, t *progress.Task) error {
	rootfs := filepath.Join(dir, "rootfs")
	t.Step(1, "debootstrap --variant=minbase "+opts.Suite+" (downloads and unpacks about 90 packages)")
	fmt.Fprintf(opts.Log, "images: debootstrap --variant=minbase %s %s\n", opts.Suite, opts.Mirror)
	env := append(os.Environ(), "LC_ALL=C", "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
	if err := run(ctx, env, "debootstrap", "--variant=minbase", "--components=main", opts.Suite, rootfs, opts.Mirror); err != nil {
		return err
	}
	sources := fmt.Sprintf("deb %[1]s %[3]s main\ndeb %[1]s %[3]s-updates main\ndeb %[2]s %[3]s-security main\n",
		opts.Mirror, opts.SecurityMirror, opts.Suite)
	if err := writeFiles(rootfs, map[string]string{
		"/etc/apt/sources.list":                 sources,
		"/etc/dpkg/dpkg.cfg.d/scaleplane-slim":  slimDpkg,
		"/etc/apt/apt.conf.d/90scaleplane-slim": "APT::Install-Recommends \"false\";\nAPT::Install-Suggests \"false\";\n",
	}); err != nil {
		return err
	}
	if err := slimRootfs(rootfs); err != nil {
		return err
	}
	t.Step(2, "apt-get update and upgrade in the base")
	fmt.Fprintf(opts.Log, "images: apt-get update && apt-get upgrade in the base\n")
	if err := inChroot(ctx, rootfs, false, func() error {
		if err := chrootRun(ctx, rootfs, "apt-get", "update"); err != nil {
			return err
		}
		return chrootRun(ctx, rootfs, "apt-get", "-y", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", "upgrade")
	}); err != nil {
		return err
	}
	// Keep the lists beside the rootfs for the server builds.
	lists := filepath.Join(dir, "apt-lists")
	if err := os.MkdirAll(lists, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(rootfs, "var/lib/apt/lists"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Type().IsRegular() && e.Name() != "lock" {
			if err := os.Rename(filepath.Join(rootfs, "var/lib/apt/lists", e.Name()), filepath.Join(lists, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := cleanRootfs(rootfs); err != nil {
		return err
	}
	t.Step(3, "writing the base layer")
	fmt.Fprintf(opts.Log, "images: writing the base layer\n")
	entriesList, err := treeEntries(rootfs)
	if err != nil {
		return err
	}
	_, err = writeLayer(dir, rootfs, entriesList, "")
	return err
}

// DebianServer returns the image of spec: the base layer (made first if
// need be) and a layer with what installing spec.Packages into a copy of the
// base changed, cached by the base digest and the whole spec.
//
// apt installs from the lists the base was upgraded with (kept in the base's
// cache), so a server pulls the same library versions the base holds and its
// layer carries only its own files; only if the archive has moved on and a
// download fails does it run apt-get update in the chroot and try again.
func DebianServer(ctx context.Context, opts DebianOptions, spec DebianSpec) (*DebianImage, error) {
	opts = opts.withDefaults()
	if spec.Name == "" || len(spec.Packages) == 0 || spec.User == "" || len(spec.Entrypoint) == 0 {
		return nil, fmt.Errorf("invalid Debian spec %q: it needs a name, packages, a user and an entrypoint", spec.Name)
	}
	base, err := DebianBase(ctx, opts)
	if err != nil {
		return nil, err
	}
	key, err := json.Marshal(struct {
		Recipe, Suite, Base string
		Spec                DebianSpec
	}{debianServerRecipe, opts.Suite, base.Digest.String(), spec})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(key)
	built := false
	var took time.Duration
	dir, err := toolchain.Ensure(ctx, "debian-"+spec.Name, opts.Suite+"-"+hex.EncodeToString(sum[:])[:16], func(dir string) error {
		built = true
		start := time.Now()
		if err := buildDebianServer(ctx, opts, base, spec, dir); err != nil {
			return err
		}
		took = time.Since(start)
		return nil
	})
	if err != nil {
		return nil, err // "building debian-<name> <suite>-<key> into DIR: ..." says which
	}
	srv, meta, err := loadLayer(dir)
	if err != nil {
		return nil, err
	}
	srv.Cached, srv.BuildTime = !built, took
	img, err := debianImage(spec, meta.User, base.Layer, srv.Layer)
	if err != nil {
		return nil, fmt.Errorf("making the %s image: %w", spec.Name, err)
	}
	return &DebianImage{Spec: spec, Image: img, Base: base, Server: srv, User: meta.User, Cached: base.Cached && srv.Cached}, nil
}

func buildDebianServer(ctx context.Context, opts DebianOptions, base *DebianLayer, spec DebianSpec, dir string) error {
	if os.Geteuid() != 0 {
		return errors.New("building Debian images needs root (chroot)")
	}
	rootfs := filepath.Join(dir, "rootfs")
	defer func() { _ = os.RemoveAll(rootfs) }() // only the layer is kept
	fmt.Fprintf(opts.Log, "images: %s: apt-get install %s\n", spec.Name, strings.Join(spec.Packages, " "))
	if err := run(ctx, nil, "cp", "-a", "--reflink=auto", base.Rootfs, rootfs); err != nil {
		return err
	}
	if err := run(ctx, nil, "cp", "-a", filepath.Join(base.Dir, "apt-lists")+"/.", filepath.Join(rootfs, "var/lib/apt/lists")+"/"); err != nil {
		return err
	}
	files := map[string]string{}
	for p, c := range spec.Files {
		files[p] = c
	}
	if len(spec.Exclude) > 0 {
		files["/etc/dpkg/dpkg.cfg.d/scaleplane-"+spec.Name] = "path-exclude " + strings.Join(spec.Exclude, "\npath-exclude ") + "\n"
	}
	if err := writeFiles(rootfs, files); err != nil {
		return err
	}
	install := append([]string{"apt-get", "install", "-y", "--no-install-recommends",
		"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"}, spec.Packages...)
	if err := inChroot(ctx, rootfs, spec.Proc, func() error {
		err := chrootRun(ctx, rootfs, install...)
		if err == nil || !strings.Contains(err.Error(), "Unable to fetch") && !strings.Contains(err.Error(), "Failed to fetch") {
			return err
		}
		fmt.Fprintf(opts.Log, "images: %s: install from the base's lists failed, updating them: %v\n", spec.Name, firstLine(err))
		if err := chrootRun(ctx, rootfs, "apt-get", "update"); err != nil {
			return err
		}
		return chrootRun(ctx, rootfs, install...)
	}); err != nil {
		return err
	}
	if err := cleanRootfs(rootfs); err != nil {
		return err
	}
	user, err := lookupUser(rootfs, spec.User)
	if err != nil {
		return err
	}
	entries, err := diffEntries(base.Rootfs, rootfs)
	if err != nil {
		return err
	}
	_, err = writeLayer(dir, rootfs, entries, user)
	return err
}

// debianImage assembles base + server layer with the spec's config.
func debianImage(spec DebianSpec, user string, layers ...v1.Layer) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.User = user
	cf.Config.Entrypoint = spec.Entrypoint
	cf.Config.Cmd = spec.Cmd
	cf.Config.WorkingDir = spec.Workdir
	if cf.Config.WorkingDir == "" {
		cf.Config.WorkingDir = "/"
	}
	env := []string{"PATH=" + debianPath}
	for _, e := range spec.Env {
		if strings.HasPrefix(e, "PATH=") {
			env[0] = e
		} else {
			env = append(env, e)
		}
	}
	cf.Config.Env = env
	if len(spec.Ports) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range spec.Ports {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	return mutate.ConfigFile(img, cf)
}

// run runs a command on this machine (niced: the machine is shared), with
// env (nil: this process's), returning its output in the error.
func run(ctx context.Context, env []string, name string, args ...string) error {
	if nice, err := exec.LookPath("nice"); err == nil {
		args = append([]string{"-n", "10", name}, args...)
		name = nice
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		if len(out) > 4000 {
			out = append([]byte("..."), out[len(out)-4000:]...)
		}
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return nil
}

// chrootRun runs a command inside rootfs with a clean environment: no
// prompts (DEBIAN_FRONTEND=noninteractive), the C locale.
func chrootRun(ctx context.Context, rootfs string, args ...string) error {
	env := []string{"PATH=" + debianPath, "HOME=/root", "LC_ALL=C", "LANG=C",
		"DEBIAN_FRONTEND=noninteractive", "DEBCONF_NONINTERACTIVE_SEEN=true"}
	return run(ctx, env, "chroot", append([]string{rootfs}, args...)...)
}

// inChroot prepares rootfs for running maintainer scripts (the policy that
// starts no service, the host's resolver for apt's downloads, /proc if
// asked), runs fn, and undoes all three, the unmount in any case.
func inChroot(ctx context.Context, rootfs string, proc bool, fn func() error) (err error) {
	resolv, rerr := os.ReadFile("/etc/resolv.conf")
	if rerr != nil {
		return fmt.Errorf("reading the host's resolver: %w", rerr)
	}
	_ = os.Remove(filepath.Join(rootfs, "etc/resolv.conf")) // debootstrap's copy, maybe a symlink
	if err := writeFiles(rootfs, map[string]string{"/etc/resolv.conf": string(resolv)}); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(rootfs, "usr/sbin/policy-rc.d"), []byte(policyRCD), 0o755); err != nil {
		return err
	}
	if proc {
		mnt := filepath.Join(rootfs, "proc")
		if err := run(ctx, nil, "mount", "-t", "proc", "proc", mnt); err != nil {
			return err
		}
		defer func() {
			// Not under ctx: the unmount must happen even when ctx is done.
			if uerr := run(context.Background(), nil, "umount", mnt); uerr != nil {
				if lerr := run(context.Background(), nil, "umount", "-l", mnt); lerr != nil && err == nil {
					err = fmt.Errorf("unmounting %s: %w", mnt, lerr)
				}
			}
		}()
	}
	return fn()
}

// writeFiles writes files (absolute paths inside rootfs) 0644, root-owned,
// creating parents 0755.
func writeFiles(rootfs string, files map[string]string) error {
	for p, content := range files {
		full := filepath.Join(rootfs, filepath.Clean("/"+p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// slimRootfs removes what slimDpkg keeps out of later installs from what
// debootstrap already installed: the files, not the directories, which
// maintainer scripts may expect (update-alternatives links manual pages into
// /usr/share/man/man1).
func slimRootfs(rootfs string) error {
	for _, d := range []string{"usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/groff", "usr/share/lintian", "usr/share/linda", "usr/share/locale"} {
		err := filepath.WalkDir(filepath.Join(rootfs, d), func(p string, e fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil || e.IsDir() || (d == "usr/share/doc" && e.Name() == "copyright") {
				return err
			}
			return os.Remove(p)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// cleanRootfs removes what the build leaves behind and the image must not
// carry: the build-time policy and resolver, the host's hostname
// (debootstrap copies it), adduser's lock, apt's lists and caches, install logs, dpkg and
// debconf backups, ldconfig's auxiliary cache (it records inode times), the
// snakeoil key pair.
func cleanRootfs(rootfs string) error {
	for _, f := range []string{"usr/sbin/policy-rc.d", "etc/resolv.conf", "etc/hostname", "run/adduser",
		"var/log/dpkg.log", "var/log/alternatives.log", "var/log/bootstrap.log",
		"var/cache/ldconfig/aux-cache", "var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin",
		// ssl-cert's postinst makes a fresh key pair: no private key is
		// shipped in an image, and the configs name their own certificates.
		"etc/ssl/private/ssl-cert-snakeoil.key", "etc/ssl/certs/ssl-cert-snakeoil.pem"} {
		if err := os.Remove(filepath.Join(rootfs, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	for _, g := range []string{"var/cache/debconf/*-old", "var/lib/dpkg/*-old", "var/cache/apt/archives/*.deb", "var/cache/apt/archives/partial/*", "var/lib/apt/lists/partial/*"} {
		matches, _ := filepath.Glob(filepath.Join(rootfs, g))
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	if err := emptyDir(filepath.Join(rootfs, "var/lib/apt/lists"), map[string]bool{"partial": true, "lock": true}); err != nil {
		return err
	}
	if err := emptyDir(filepath.Join(rootfs, "var/log/apt"), nil); err != nil {
		return err
	}
	return emptyDir(filepath.Join(rootfs, "tmp"), nil)
}

// emptyDir removes everything in dir but the names in keep; a missing dir is
// fine.
func emptyDir(dir string, keep map[string]bool) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if keep[e.Name()] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// lookupUser returns the numeric uid:gid of name in rootfs's /etc/passwd,
// refusing root: the images run as non-root.
func lookupUser(rootfs, name string) (string, error) {
	data, err := os.ReadFile(filepath.Join(rootfs, "etc/passwd"))
	if err != nil {
		return "", err
	}
	return passwdUser(data, name)
}

func passwdUser(passwd []byte, name string) (string, error) {
	for _, line := range strings.Split(string(passwd), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 4 || f[0] != name {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return "", fmt.Errorf("bad /etc/passwd entry %q", line)
		}
		if uid == 0 {
			return "", fmt.Errorf("user %q is root; images run as non-root", name)
		}
		return fmt.Sprintf("%d:%d", uid, gid), nil
	}
	return "", fmt.Errorf("no user %q in /etc/passwd (does the package create it?)", name)
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// layerEntry is one tar entry: a path of the root filesystem (slash
// separated, relative), or a whiteout of it.
type layerEntry struct {
	rel      string
	whiteout bool
}

// name is the entry's name in the tar.
func (e layerEntry) name() string {
	if e.whiteout {
		return path.Join(path.Dir(e.rel), ".wh."+path.Base(e.rel))
	}
	return e.rel
}

// skipType reports file types no layer carries: devices, fifos, sockets.
func skipType(m fs.FileMode) bool {
	return m&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket|fs.ModeIrregular) != 0
}

// treeEntries lists every path under root (root itself excluded) in walk
// order, which sorts each directory's names and puts a directory before its
// contents.
func treeEntries(root string) ([]layerEntry, error) {
	var out []layerEntry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root || skipType(d.Type()) {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		out = append(out, layerEntry{rel: filepath.ToSlash(rel)})
		return nil
	})
	return out, err
}

// diffEntries lists what turns base into upper: paths that are new or
// differ (type, permissions, owner, link target, content, file
// capabilities) and whiteouts for paths upper no longer has. Unchanged
// directories are left out (the base has them); a removed directory is one
// whiteout.
func diffEntries(base, upper string) ([]layerEntry, error) {
	var out []layerEntry
	// Below a path that is new, or whose base counterpart is no directory,
	// everything is new; base is not consulted, so that a symlink there
	// is never followed.
	fresh := ""
	err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == upper || skipType(d.Type()) {
			return nil
		}
		rel, err := filepath.Rel(upper, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if fresh != "" && strings.HasPrefix(rel, fresh+"/") {
			out = append(out, layerEntry{rel: rel})
			return nil
		}
		ui, err := os.Lstat(p)
		if err != nil {
			return err
		}
		bi, err := os.Lstat(filepath.Join(base, rel))
		if errors.Is(err, fs.ErrNotExist) {
			out = append(out, layerEntry{rel: rel})
			if ui.IsDir() {
				fresh = rel
			}
			return nil
		}
		if err != nil {
			return err
		}
		same, err := sameFile(filepath.Join(base, rel), p, bi, ui)
		if err != nil {
			return err
		}
		if !same {
			out = append(out, layerEntry{rel: rel})
			if ui.IsDir() && !bi.IsDir() {
				fresh = rel
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == base || skipType(d.Type()) {
			return nil
		}
		rel, err := filepath.Rel(base, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		ui, err := os.Lstat(filepath.Join(upper, rel))
		if errors.Is(err, fs.ErrNotExist) {
			out = append(out, layerEntry{rel: rel, whiteout: true})
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if err != nil {
			return err
		}
		if d.IsDir() && !ui.IsDir() {
			return filepath.SkipDir // replaced as a whole by upper's entry
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return lessPath(out[i].name(), out[j].name()) })
	return out, nil
}

// lessPath orders paths component by component, as a directory walk does.
func lessPath(a, b string) bool {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(as) && i < len(bs); i++ {
		if as[i] != bs[i] {
			return as[i] < bs[i]
		}
	}
	return len(as) < len(bs)
}

// sameFile reports whether two lstat'ed paths are the same file for a layer.
func sameFile(a, b string, ai, bi fs.FileInfo) (bool, error) {
	if ai.Mode().Type() != bi.Mode().Type() {
		return false, nil
	}
	as, bs := ai.Sys().(*syscall.Stat_t), bi.Sys().(*syscall.Stat_t)
	if as.Mode&0o7777 != bs.Mode&0o7777 || as.Uid != bs.Uid || as.Gid != bs.Gid {
		return false, nil
	}
	switch {
	case ai.Mode()&fs.ModeSymlink != 0:
		at, err := os.Readlink(a)
		if err != nil {
			return false, err
		}
		bt, err := os.Readlink(b)
		return at == bt, err
	case ai.Mode().IsRegular():
		if ai.Size() != bi.Size() || !bytes.Equal(fileCaps(a), fileCaps(b)) {
			return false, nil
		}
		return sameContent(a, b)
	}
	return true, nil
}

func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer func() { _ = fa.Close() }()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer func() { _ = fb.Close() }()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == ea, nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil {
			return false, eb
		}
	}
}

// fileCaps returns a regular file's security.capability attribute (what
// setcap sets), nil when it has none.
func fileCaps(p string) []byte {
	buf := make([]byte, 256)
	n, err := syscall.Getxattr(p, "security.capability", buf)
	if err != nil || n <= 0 {
		return nil
	}
	return buf[:n]
}

// countingWriter counts bytes.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// writeLayer writes entries of root as dir/layer.tar.gz and its
// dir/layer.json, and returns the metadata. Entries are written in the
// given order with the epoch as every time, numeric owners and no owner
// names; a file with several links is written once and linked after; its
// first name in this layer is the link target, so no link points into
// another layer.
func writeLayer(dir, root string, entries []layerEntry, user string) (layerMeta, error) {
	f, err := os.Create(filepath.Join(dir, layerFile))
	if err != nil {
		return layerMeta{}, err
	}
	defer func() { _ = f.Close() }()
	bw := bufio.NewWriterSize(f, 1<<20)
	compressedHash, compressedCount := sha256.New(), &countingWriter{}
	gz, err := gzip.NewWriterLevel(io.MultiWriter(bw, compressedHash, compressedCount), gzip.DefaultCompression)
	if err != nil {
		return layerMeta{}, err
	}
	tarHash, tarCount := sha256.New(), &countingWriter{}
	tw := tar.NewWriter(io.MultiWriter(gz, tarHash, tarCount))
	links := map[[2]uint64]string{}
	for _, e := range entries {
		if err := writeEntry(tw, root, e, links); err != nil {
			return layerMeta{}, fmt.Errorf("layer entry %s: %w", e.rel, err)
		}
	}
	if err := tw.Close(); err != nil {
		return layerMeta{}, err
	}
	if err := gz.Close(); err != nil {
		return layerMeta{}, err
	}
	if err := bw.Flush(); err != nil {
		return layerMeta{}, err
	}
	if err := f.Close(); err != nil {
		return layerMeta{}, err
	}
	meta := layerMeta{
		Digest: hashString(compressedHash), DiffID: hashString(tarHash),
		Size: compressedCount.n, UncompressedSize: tarCount.n, User: user,
	}
	data, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return layerMeta{}, err
	}
	return meta, os.WriteFile(filepath.Join(dir, layerMetaFile), append(data, '\n'), 0o644)
}

func hashString(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }

func writeEntry(tw *tar.Writer, root string, e layerEntry, links map[[2]uint64]string) error {
	if e.whiteout {
		return tw.WriteHeader(&tar.Header{Name: e.name(), Typeflag: tar.TypeReg, Mode: 0o644, ModTime: epoch})
	}
	p := filepath.Join(root, filepath.FromSlash(e.rel))
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	st := fi.Sys().(*syscall.Stat_t)
	h := &tar.Header{Name: e.rel, Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid), ModTime: epoch}
	switch {
	case fi.IsDir():
		h.Typeflag, h.Name = tar.TypeDir, e.rel+"/"
		return tw.WriteHeader(h)
	case fi.Mode()&fs.ModeSymlink != 0:
		h.Typeflag = tar.TypeSymlink
		if h.Linkname, err = os.Readlink(p); err != nil {
			return err
		}
		return tw.WriteHeader(h)
	case fi.Mode().IsRegular():
	default:
		return nil // devices and the like: the runtime provides /dev
	}
	if st.Nlink > 1 {
		key := [2]uint64{uint64(st.Dev), st.Ino}
		if target, ok := links[key]; ok {
			h.Typeflag, h.Linkname = tar.TypeLink, target
			return tw.WriteHeader(h)
		}
		links[key] = e.rel
	}
	h.Typeflag, h.Size = tar.TypeReg, fi.Size()
	if caps := fileCaps(p); caps != nil {
		h.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": string(caps)}
	}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	src, err := os.Open(p)
	if err != nil {
		return err
	}
	defer func() { _ = src.Close() }()
	n, err := io.Copy(tw, src)
	if err != nil {
		return err
	}
	if n != h.Size {
		return fmt.Errorf("size changed while writing (%d of %d bytes)", n, h.Size)
	}
	return nil
}

// loadLayer opens the cached layer in dir.
func loadLayer(dir string) (*DebianLayer, layerMeta, error) {
	var meta layerMeta
	data, err := os.ReadFile(filepath.Join(dir, layerMetaFile))
	if err != nil {
		return nil, meta, fmt.Errorf("reading cached layer: %w", err)
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		return nil, meta, fmt.Errorf("%s: %w", filepath.Join(dir, layerMetaFile), err)
	}
	digest, err := v1.NewHash(meta.Digest)
	if err != nil {
		return nil, meta, err
	}
	diffID, err := v1.NewHash(meta.DiffID)
	if err != nil {
		return nil, meta, err
	}
	l, err := partial.CompressedToLayer(&cachedLayer{file: filepath.Join(dir, layerFile), digest: digest, diffID: diffID, size: meta.Size})
	if err != nil {
		return nil, meta, err
	}
	return &DebianLayer{Layer: l, Digest: digest, DiffID: diffID, Size: meta.Size, UncompressedSize: meta.UncompressedSize, Dir: dir}, meta, nil
}

// cachedLayer is a gzipped layer file whose digests were recorded when it
// was written, so using it costs no hashing.
type cachedLayer struct {
	file           string
	digest, diffID v1.Hash
	size           int64
}

func (l *cachedLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *cachedLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *cachedLayer) Size() (int64, error)                { return l.size, nil }
func (l *cachedLayer) MediaType() (types.MediaType, error) { return types.DockerLayer, nil }
func (l *cachedLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.file) }
