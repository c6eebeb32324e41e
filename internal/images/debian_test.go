package images

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/internal/images/imagetest"
)

// The unit tests below need neither root nor the network: they check how
// layers are written and diffed on small trees.

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755), "mkdir %s", p)
		if strings.HasPrefix(content, "->") {
			require.NoError(t, os.Symlink(strings.TrimPrefix(content, "->"), full), "symlink %s", p)
			continue
		}
		require.NoError(t, os.WriteFile(full, []byte(content), 0o644), "write %s", p)
	}
}

// layerHeaders reads a written layer back.
func layerHeaders(t *testing.T, dir string) []*tar.Header {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, layerFile))
	require.NoError(t, err, "opening the layer")
	defer func() { _ = f.Close() }()
	gz, err := gzip.NewReader(f)
	require.NoError(t, err, "the layer is gzipped")
	tr := tar.NewReader(gz)
	var hs []*tar.Header
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hs
		}
		require.NoError(t, err, "reading the layer")
		hs = append(hs, h)
	}
}

func TestDiffEntriesFindsNewChangedAndRemovedPaths(t *testing.T) {
	base, upper := t.TempDir(), t.TempDir()
	writeTree(t, base, map[string]string{
		"etc/changed": "old", "etc/same": "same", "etc/link": "->same",
		"gone/sub/f": "x", "gonefile": "x", "usr/lib/keep": "k", "moved": "->etc",
	})
	writeTree(t, upper, map[string]string{
		"etc/changed": "new", "etc/same": "same", "etc/link": "->changed",
		"usr/lib/keep": "k", "usr/lib/new/f": "n", "moved/f": "now a directory",
	})
	require.NoError(t, os.Chmod(filepath.Join(upper, "usr/lib/keep"), 0o600), "chmod")

	entries, err := diffEntries(base, upper)
	require.NoError(t, err, "diffing")
	var names []string
	for _, e := range entries {
		names = append(names, e.name())
	}
	assert.Equal(t, []string{
		".wh.gone", ".wh.gonefile", // removed: one whiteout per removed directory, none for its contents
		"etc/changed", "etc/link", // new content, new link target; etc/same is left out
		"moved", "moved/f", // a symlink that became a directory: everything in it is new
		"usr/lib/keep",                 // permissions changed
		"usr/lib/new", "usr/lib/new/f", // new directory and its file
	}, names, "the layer holds exactly the differences, in walk order")
}

func TestWriteLayerIsReproducible(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"bin/tool": "tool", "etc/conf": "c", "etc/alias": "->conf"})
	require.NoError(t, os.Link(filepath.Join(root, "bin/tool"), filepath.Join(root, "bin/tool2")), "hard link")
	entries, err := treeEntries(root)
	require.NoError(t, err, "listing")
	entries = append(entries, layerEntry{rel: "etc/removed", whiteout: true})

	a, b := t.TempDir(), t.TempDir()
	ma, err := writeLayer(a, root, entries, "")
	require.NoError(t, err, "first write")
	later := time.Now().Add(time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(root, "etc/conf"), later, later), "touch")
	mb, err := writeLayer(b, root, entries, "")
	require.NoError(t, err, "second write")
	assert.Equal(t, ma.Digest, mb.Digest, "file times do not change the layer")
	assert.Equal(t, ma.DiffID, mb.DiffID, "nor the uncompressed tar")

	byName := map[string]*tar.Header{}
	for _, h := range layerHeaders(t, a) {
		byName[h.Name] = h
		assert.True(t, h.ModTime.Equal(epoch), "%s has the fixed time", h.Name)
		assert.Empty(t, h.Uname, "%s carries no owner name (numeric only)", h.Name)
		if !strings.Contains(h.Name, ".wh.") {
			assert.Equal(t, os.Getuid(), h.Uid, "%s keeps its numeric owner", h.Name)
		}
	}
	require.Contains(t, byName, "bin/tool2", "the second link is in the layer")
	assert.Equal(t, byte(tar.TypeLink), byName["bin/tool2"].Typeflag, "a second name of a file is a hard link")
	assert.Equal(t, "bin/tool", byName["bin/tool2"].Linkname, "linked to the first name in this layer")
	assert.Equal(t, byte(tar.TypeSymlink), byName["etc/alias"].Typeflag, "symlinks stay symlinks")
	assert.Contains(t, byName, "etc/.wh.removed", "a removed file is an OCI whiteout")
	assert.Contains(t, byName, "etc/", "directories are entries")

	l, _, err := loadLayer(a)
	require.NoError(t, err, "loading the cached layer")
	d, err := l.Layer.Digest()
	require.NoError(t, err, "digest")
	assert.Equal(t, ma.Digest, d.String(), "the cached layer reports the recorded digest")
}

func TestPasswdUserIsNumericAndNonRoot(t *testing.T) {
	passwd := []byte("root:x:0:0:root:/root:/bin/bash\nredis:x:100:101::/var/lib/redis:/usr/sbin/nologin\n")
	u, err := passwdUser(passwd, "redis")
	require.NoError(t, err, "redis is there")
	assert.Equal(t, "100:101", u, "uid:gid from /etc/passwd")
	_, err = passwdUser(passwd, "root")
	assert.Error(t, err, "root is refused")
	_, err = passwdUser(passwd, "nginx")
	assert.Error(t, err, "a missing user is an error")
}

func TestDebianServersTableIsComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range DebianServers {
		assert.False(t, seen[s.Name], "%s listed once", s.Name)
		seen[s.Name] = true
		assert.NotEmpty(t, s.Packages, "%s installs packages", s.Name)
		assert.NotEmpty(t, s.User, "%s names its user", s.Name)
		require.NotEmpty(t, s.Entrypoint, "%s has an entrypoint", s.Name)
		assert.True(t, filepath.IsAbs(s.Entrypoint[0]), "%s's entrypoint is an absolute path (no shell resolves it)", s.Name)
	}
	for _, want := range []string{"redis", "nginx", "haproxy", "pgbouncer", "postgresql", "prometheus", "jre"} {
		assert.True(t, seen[want], "%s has a spec", want)
	}
}

// The tests below build the real images: root (debootstrap, chroot) and the
// Debian archive on the first run; the tool cache makes later runs fast.

func debianOrSkip(t *testing.T) (context.Context, DebianOptions) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("building Debian images needs root (debootstrap, chroot, numeric owners); CI runs as root")
	}
	_, cached, err := DebianBaseDir(DebianOptions{})
	require.NoError(t, err, "cache dir")
	if !cached {
		if testing.Short() {
			t.Skip("the Debian base is not cached and making it downloads the archive; run without -short once")
		}
		_, err := exec.LookPath("debootstrap")
		require.NoError(t, err, "debootstrap is needed for the first build (apt-get install debootstrap; .ci/run installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	t.Cleanup(cancel)
	return ctx, DebianOptions{Log: imagetest.Log{T: t}}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func TestDebianServerImages(t *testing.T) {
	ctx, opts := debianOrSkip(t)

	start := time.Now()
	base, err := DebianBase(ctx, opts)
	require.NoError(t, err, "building the Debian base")
	t.Logf("base %s: %s compressed, %s uncompressed; cached=%v, %s (build %s)",
		base.Digest.String()[:19], mib(base.Size), mib(base.UncompressedSize), base.Cached, time.Since(start).Round(time.Millisecond), base.BuildTime.Round(time.Second))
	again, err := DebianBase(ctx, opts)
	require.NoError(t, err, "the base again")
	assert.True(t, again.Cached, "the second call is a cache hit")
	assert.Equal(t, base.Digest, again.Digest, "and gives the same layer")

	built := map[string]*DebianImage{}
	for _, spec := range DebianServers {
		start := time.Now()
		img, err := DebianServer(ctx, opts, spec)
		require.NoError(t, err, "building %s", spec.Name)
		took := time.Since(start)
		d, err := img.Image.Digest()
		require.NoError(t, err, "%s digest", spec.Name)
		m, err := img.Image.Manifest()
		require.NoError(t, err, "%s manifest", spec.Name)
		var total int64
		for _, l := range m.Layers {
			total += l.Size
		}
		t.Logf("%s %s: layer %s compressed, %s uncompressed; image %s compressed, %s uncompressed; user %s; cached=%v, %s (build %s)",
			spec.Name, d.String()[:19], mib(img.Server.Size), mib(img.Server.UncompressedSize),
			mib(total), mib(base.UncompressedSize+img.Server.UncompressedSize), img.User, img.Cached,
			took.Round(time.Millisecond), img.Server.BuildTime.Round(time.Second))

		layers, err := img.Image.Layers()
		require.NoError(t, err, "%s layers", spec.Name)
		require.Len(t, layers, 2, "%s is the base layer and its own", spec.Name)
		bd, err := layers[0].Digest()
		require.NoError(t, err, "base digest")
		assert.Equal(t, base.Digest, bd, "%s's first layer is the shared base", spec.Name)

		cf, err := img.Image.ConfigFile()
		require.NoError(t, err, "%s config", spec.Name)
		assert.Equal(t, "linux", cf.OS, "containerd filters out images without an OS")
		assert.Equal(t, "amd64", cf.Architecture, "and without an architecture")
		assert.Equal(t, spec.Entrypoint, cf.Config.Entrypoint, "%s entrypoint", spec.Name)
		uid, gid, ok := strings.Cut(cf.Config.User, ":")
		require.True(t, ok, "%s user is uid:gid, got %q", spec.Name, cf.Config.User)
		u, err1 := strconv.Atoi(uid)
		_, err2 := strconv.Atoi(gid)
		require.NoError(t, err1, "%s uid is numeric (runAsNonRoot can check it)", spec.Name)
		require.NoError(t, err2, "%s gid is numeric", spec.Name)
		assert.NotZero(t, u, "%s does not run as root", spec.Name)

		second, err := DebianServer(ctx, opts, spec)
		require.NoError(t, err, "%s again", spec.Name)
		assert.True(t, second.Cached, "%s: the second build is a cache hit", spec.Name)
		d2, err := second.Image.Digest()
		require.NoError(t, err, "digest")
		assert.Equal(t, d, d2, "%s: and the same image", spec.Name)

		assert.Contains(t, imageFiles(t, img.Image), strings.TrimPrefix(spec.Entrypoint[0], "/"), "%s's entrypoint is in the image", spec.Name)
		built[spec.Name] = img
	}
	if pg := built["postgresql"]; pg != nil {
		cf, err := pg.Image.ConfigFile()
		require.NoError(t, err, "config")
		assert.Contains(t, cf.Config.Env, "PATH=/usr/lib/postgresql/15/bin:"+debianPath, "postgres's tools are on PATH")
	}

	t.Run("an archive of several images holds the base once", func(t *testing.T) {
		var tagged []Tagged
		for _, n := range []string{"redis", "nginx", "haproxy"} {
			ref, err := DigestTag("scaleplane.local/debian-"+n, built[n].Image)
			require.NoError(t, err, "digest tag")
			tagged = append(tagged, Tagged{Image: built[n].Image, Refs: []string{ref}})
		}
		file := filepath.Join(t.TempDir(), "images.tar")
		require.NoError(t, WriteTarball(file, tagged), "writing the archive")
		f, err := os.Open(file)
		require.NoError(t, err, "opening the archive")
		defer func() { _ = f.Close() }()
		blobs := 0
		tr := tar.NewReader(f)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			require.NoError(t, err, "reading the archive")
			if strings.Contains(h.Name, base.Digest.Hex) {
				blobs++
			}
		}
		assert.Equal(t, 1, blobs, "three images, one copy of the base layer")
	})

	t.Run("redis answers PING", func(t *testing.T) {
		img := built["redis"]
		root := imagetest.Extract(t, img.Image)
		port := freePort(t)
		srv := imagetest.Start(t, root, img.User, "/usr/bin/redis-server", "--port", port, "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--daemonize", "no")
		var reply string
		require.Eventually(t, func() bool {
			reply = redisPing(net.JoinHostPort("127.0.0.1", port))
			return reply == "+PONG"
		}, 20*time.Second, 100*time.Millisecond, "redis-server from the image answers PING (last reply %q)\n%s", reply, srv.Output())
		srv.Stop(t)
	})

	t.Run("nginx checks and serves a config", func(t *testing.T) {
		img := built["nginx"]
		root := imagetest.Extract(t, img.Image)
		port := freePort(t)
		var temps strings.Builder
		for _, d := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
			fmt.Fprintf(&temps, "  %s_temp_path /tmp/%s;\n", d, d)
		}
		conf := "pid /tmp/nginx.pid;\nerror_log stderr;\nworker_processes 1;\nevents { worker_connections 16; }\nhttp {\n  access_log off;\n" +
			temps.String() + "  server { listen 127.0.0.1:" + port + "; location / { return 200 \"scaleplane\\n\"; } }\n}\n"
		require.NoError(t, os.WriteFile(filepath.Join(root, "tmp/nginx.conf"), []byte(conf), 0o644), "writing the config")
		out, err := exec.Command("chroot", "--userspec="+img.User, root, "/usr/sbin/nginx", "-e", "stderr", "-t", "-c", "/tmp/nginx.conf").CombinedOutput()
		require.NoError(t, err, "nginx -t in the image as its user:\n%s", out)
		srv := imagetest.Start(t, root, img.User, "/usr/sbin/nginx", "-e", "stderr", "-c", "/tmp/nginx.conf", "-g", "daemon off;")
		var body string
		require.Eventually(t, func() bool {
			resp, err := http.Get("http://127.0.0.1:" + port + "/")
			if err != nil {
				return false
			}
			defer func() { _ = resp.Body.Close() }()
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
			return resp.StatusCode == 200
		}, 20*time.Second, 100*time.Millisecond, "nginx from the image serves\n%s", srv.Output())
		assert.Equal(t, "scaleplane\n", body, "the configured answer")
		srv.Stop(t)
	})

	t.Run("haproxy accepts a config", func(t *testing.T) {
		img := built["haproxy"]
		root := imagetest.Extract(t, img.Image)
		conf := "global\n  maxconn 64\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n" +
			"frontend web\n  bind 127.0.0.1:" + freePort(t) + "\n  default_backend app\nbackend app\n  server s1 127.0.0.1:1\n"
		require.NoError(t, os.WriteFile(filepath.Join(root, "tmp/haproxy.cfg"), []byte(conf), 0o644), "writing the config")
		out, err := exec.Command("chroot", "--userspec="+img.User, root, "/usr/sbin/haproxy", "-c", "-f", "/tmp/haproxy.cfg").CombinedOutput()
		require.NoError(t, err, "haproxy -c in the image as its user:\n%s", out)
	})
}

// imageFiles lists the paths of img's flattened root filesystem.
func imageFiles(t *testing.T, img v1.Image) map[string]bool {
	t.Helper()
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }()
	files := map[string]bool{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		require.NoError(t, err, "reading the flattened image")
		files[strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")] = true
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err, "finding a free port")
	defer func() { _ = l.Close() }()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// redisPing sends PING and returns the reply line.
func redisPing(addr string) string {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err.Error()
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err.Error()
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(line)
}
