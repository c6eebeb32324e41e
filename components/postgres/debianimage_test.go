package postgres_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/jackc/pgx/v5"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	k8sresource "k8s.io/apimachinery/pkg/api/resource"

	"github.com/scaleplane/scaleplane/components/internal/kube"
	"github.com/scaleplane/scaleplane/components/postgres"
	"github.com/scaleplane/scaleplane/internal/images"
	"github.com/scaleplane/scaleplane/internal/realserver/realservertest"
)

// Stand-ins for the credentials Secret's values.
const (
	debSuperPassword = "super-test-password"
	debReplPassword  = "repl-test-password"
	debAppPassword   = "app-test-password"
	// volumeMount is the pods' data volume; PGDATA is its pgdata subdirectory.
	volumeMount = "/var/lib/postgresql/data"
)

// debianArgs are in-cluster Args as the local stack sizes them.
func debianArgs() postgres.Args {
	return postgres.Args{
		Flavour: postgres.FlavourInCluster, Namespace: "ns", Replicas: 1,
		AppPassword: pulumi.String(debAppPassword), SuperuserPassword: pulumi.String(debSuperPassword), ReplicationPassword: pulumi.String(debReplPassword),
		Pooler: postgres.PoolerArgs{
			Replicas:    kube.Replicas{Min: 2, Max: 4},
			Autoscaling: kube.Autoscaling{CPUTargetPercent: 70, MemoryTargetPercent: 80},
		},
		Resources: kube.Resources{CPURequest: k8sresource.MustParse("100m"), MemoryRequest: k8sresource.MustParse("256Mi"), MemoryLimit: k8sresource.MustParse("256Mi")},
		Storage:   k8sresource.MustParse("2Gi"),
	}
}

type logWriter struct{ t *testing.T }

func (l logWriter) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// debianImage is an extracted Debian server image: its root filesystem and
// the environment its config gives a container.
type debianImage struct {
	root string
	env  []string
	user string
}

// extractDebian builds (or takes from the tool cache) the Debian image
// `scaleplane images build` makes for spec name and unpacks its flattened
// root filesystem, owners kept. The runtime's part is added: /dev/null,
// /dev/zero, /dev/urandom and a /dev/shm directory (the layers carry no
// device nodes).
func extractDebian(t *testing.T, name string) debianImage {
	t.Helper()
	spec, ok := images.DebianServerSpec(name)
	require.True(t, ok, "spec %s", name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	img, err := images.DebianServer(ctx, images.DebianOptions{Log: logWriter{t}}, spec)
	require.NoError(t, err, "building the Debian %s image", name)
	cf, err := img.Image.ConfigFile()
	require.NoError(t, err, "image config")
	root := t.TempDir()
	require.NoError(t, os.Chmod(root, 0o755), "the image's / is traversable")
	rc := mutate.Extract(img.Image)
	defer func() { _ = rc.Close() }()
	cmd := exec.Command("tar", "--numeric-owner", "-xpf", "-", "-C", root)
	cmd.Stdin = rc
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "extracting %s:\n%s", name, out)
	for _, d := range []struct {
		name       string
		major, min uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"urandom", 1, 9}} {
		p := filepath.Join(root, "dev", d.name)
		_ = os.Remove(p)
		require.NoError(t, syscall.Mknod(p, syscall.S_IFCHR|0o666, int(d.major<<8|d.min)), "mknod %s", p)
		require.NoError(t, os.Chmod(p, 0o666), "chmod %s", p)
	}
	require.NoError(t, os.MkdirAll(filepath.Join(root, "dev/shm"), 0o777), "/dev/shm")
	require.NoError(t, os.Chmod(filepath.Join(root, "dev/shm"), 0o1777), "/dev/shm mode")
	return debianImage{root: root, env: cf.Config.Env, user: img.User}
}

// proc is a program of an extracted image run with chroot, as a pod's uid.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	done chan struct{}
	err  error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// run starts args in img's root as uid:uid with img's environment plus env.
func (img debianImage) run(t *testing.T, uid int, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	user := fmt.Sprintf("%d:%d", uid, uid)
	p.cmd = exec.Command("chroot", append([]string{"--userspec=" + user, img.root}, args...)...)
	p.cmd.Env = append(append([]string{}, img.env...), env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	require.NoError(t, p.cmd.Start(), "starting %v", args)
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait requires the program to exit 0 within d.
func (p *proc) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-p.done:
		require.NoError(t, p.err, "%v failed:\n%s", p.cmd.Args, p.output())
	case <-time.After(d):
		t.Fatalf("%v still running after %v:\n%s", p.cmd.Args, d, p.output())
	}
}

// stop asks for a fast shutdown (SIGINT) and requires the exit within 30 s.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT), "SIGINT")
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%v did not stop:\n%s", p.cmd.Args, p.output())
	}
}

// volume makes a pod volume's mount point in img: root-owned 1777, as a
// hostPath provisioner may leave it, so PGDATA must be a subdirectory.
func (img debianImage) volume(t *testing.T, at string) {
	t.Helper()
	p := filepath.Join(img.root, at)
	require.NoError(t, os.MkdirAll(p, 0o777), "mkdir %s", at)
	require.NoError(t, os.Chmod(p, 0o1777), "chmod %s", at)
}

// waitLogin retries a password login over TCP until it works or bound
// passes, and returns the connection.
func waitLogin(t *testing.T, p *proc, dsn string, bound time.Duration) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(bound)
	for {
		c, err := pgx.Connect(ctx, dsn)
		if err == nil {
			t.Cleanup(func() { _ = c.Close(ctx) })
			return c
		}
		select {
		case <-p.done:
			t.Fatalf("%v exited (%v) before accepting logins:\n%s", p.cmd.Args, p.err, p.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no login within %v: %v\n%s", bound, err, p.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func dsn(user, password string, port int, db string) string {
	return (&url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: "127.0.0.1:" + strconv.Itoa(port),
		Path: "/" + db, RawQuery: "sslmode=disable&connect_timeout=5"}).String()
}

// TestDebianImagesRunTheRenderedStartScriptReplicaAndPooler runs the
// component's rendered ConfigMap in the Debian postgresql and pgbouncer
// images `scaleplane images build` makes, as the pods' uids, with the
// pods' commands: the start script initialises an empty volume on the
// first start (the app role then logs in with its password over TCP), the
// replica's base backup script takes a pg_basebackup -R as the replicator
// and the replica streams, PgBouncer serves the rendered ini in front of
// the primary, and a second start on the same data directory skips the
// initialisation and keeps the data.
func TestDebianImagesRunTheRenderedStartScriptReplicaAndPooler(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the Debian images and starts real servers; -short runs only the unit tests")
	}
	if os.Geteuid() != 0 {
		t.Skip("runs the images' programs with chroot as the pods' uids, which needs root; CI runs as root")
	}
	ctx := context.Background()
	a := debianArgs()
	conf := a.Conf()
	pg := extractDebian(t, "postgresql")
	assert.Equal(t, fmt.Sprintf("%d:%d", postgres.PostgresUIDForTest, postgres.PostgresUIDForTest), pg.user,
		"the Debian image's postgres account is the uid the pods run as")

	primaryPort, replicaPort := realservertest.MustFreePort(t), realservertest.MustFreePort(t)
	for name, content := range a.ConfigFiles("127.0.0.1", primaryPort) {
		p := filepath.Join(pg.root, postgres.ConfigDir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755), "config dir")
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644), "writing %s (a read-only ConfigMap file)", name)
	}
	script := path.Join(postgres.ConfigDir, postgres.StartScriptName)
	pg.volume(t, volumeMount)
	pgdata := volumeMount + "/pgdata"
	secrets := []string{"PGDATA=" + pgdata, "POSTGRES_PASSWORD=" + debSuperPassword, "REPLICATION_PASSWORD=" + debReplPassword, "APP_PASSWORD=" + debAppPassword}
	// The pod's command and args, plus the test's port on loopback.
	loopback := func(port int) []string {
		return []string{"-c", "listen_addresses=127.0.0.1", "-c", "port=" + strconv.Itoa(port)}
	}
	startPrimary := func() *proc {
		return pg.run(t, postgres.PostgresUIDForTest, secrets, append(append([]string{"sh", script}, postgres.ServerArgs()...), loopback(primaryPort)...)...)
	}
	appDSN := dsn(conf.ApplicationUser, debAppPassword, primaryPort, conf.ApplicationDB)

	began := time.Now()
	primary := startPrimary()
	app := waitLogin(t, primary, appDSN, 2*time.Minute)
	firstStart := time.Since(began)
	assert.Contains(t, primary.output(), "start.sh: initialised "+pgdata, "the first start initialises the volume")
	info, err := os.Stat(filepath.Join(pg.root, pgdata))
	require.NoError(t, err, "PGDATA exists")
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm(), "PGDATA is the server's 0700 directory")
	assert.Equal(t, uint32(postgres.PostgresUIDForTest), info.Sys().(*syscall.Stat_t).Uid, "owned by the pods' uid")
	var enc, collate, who string
	require.NoError(t, app.QueryRow(ctx, "SELECT pg_encoding_to_char(encoding), datcollate, current_user FROM pg_database WHERE datname = current_database()").Scan(&enc, &collate, &who), "database settings")
	assert.Equal(t, "UTF8", enc, "UTF8 encoding")
	assert.Equal(t, "C.UTF-8", collate, "C.UTF-8 locale")
	assert.Equal(t, conf.ApplicationUser, who, "logged in as the app role with its password (SCRAM over TCP)")
	_, err = app.Exec(ctx, "CREATE TABLE kept (id int PRIMARY KEY); INSERT INTO kept VALUES (42)")
	require.NoError(t, err, "the app role owns its database")
	super, err := pgx.Connect(ctx, dsn("postgres", debSuperPassword, primaryPort, "postgres"))
	require.NoError(t, err, "the superuser logs in with the Secret's password")
	_ = super.Close(ctx)
	_, err = pgx.Connect(ctx, dsn("postgres", "wrong-password", primaryPort, "postgres"))
	assert.Error(t, err, "a wrong password is refused")

	// A second pod on the same volume (a force-deleted pod's replacement)
	// waits for the running postmaster instead of starting beside it.
	second := pg.run(t, postgres.PostgresUIDForTest, secrets, append(append([]string{"sh", script}, postgres.ServerArgs()...), loopback(realservertest.MustFreePort(t))...)...)
	require.Eventually(t, func() bool { return strings.Contains(second.output(), "another postmaster holds") }, 20*time.Second, 100*time.Millisecond,
		"the second start waits for the lock:\n%s", second.output())
	select {
	case <-second.done:
		t.Fatalf("the second start exited instead of waiting:\n%s", second.output())
	default:
	}
	require.NoError(t, second.cmd.Process.Kill(), "stop the waiting start")
	var one int
	require.NoError(t, app.QueryRow(ctx, "SELECT 1").Scan(&one), "the first postmaster still serves")

	// The replica: the init container's script, then start.sh with the
	// same config, as the replica pods run them.
	replicaMount := "/var/lib/postgresql/replica"
	pg.volume(t, replicaMount)
	replicaEnv := []string{"PGDATA=" + replicaMount + "/pgdata", "PGPASSWORD=" + debReplPassword}
	began = time.Now()
	pg.run(t, postgres.PostgresUIDForTest, replicaEnv, "sh", path.Join(postgres.ConfigDir, postgres.BasebackupScriptName)).wait(t, 2*time.Minute)
	basebackup := time.Since(began)
	replica := pg.run(t, postgres.PostgresUIDForTest, replicaEnv, append(append([]string{"sh", script}, postgres.ServerArgs()...), loopback(replicaPort)...)...)
	ro := waitLogin(t, replica, dsn(conf.ApplicationUser, debAppPassword, replicaPort, conf.ApplicationDB), time.Minute)
	var inRecovery bool
	var kept int
	require.NoError(t, ro.QueryRow(ctx, "SELECT pg_is_in_recovery(), (SELECT id FROM kept)").Scan(&inRecovery, &kept), "read on the replica")
	assert.True(t, inRecovery, "the replica is a streaming standby (pg_basebackup -R)")
	assert.Equal(t, 42, kept, "with the primary's data")

	t.Run("pgbouncer serves the rendered ini", func(t *testing.T) {
		pb := extractDebian(t, "pgbouncer")
		pc := a.PoolerConfig("127.0.0.1", primaryPort, false)
		pc.ListenPort = realservertest.MustFreePort(t) // the pod's 6432 may be taken on this machine
		ini := filepath.Join(pb.root, "etc/pgbouncer/pgbouncer.ini")
		auth := filepath.Join(pb.root, pc.AuthFile)
		require.NoError(t, os.MkdirAll(filepath.Dir(auth), 0o755), "userlist dir")
		// The pod mounts its ConfigMap over /etc/pgbouncer, hiding the
		// package's 0640 pgbouncer.ini; its files are 0644.
		require.NoError(t, os.Remove(ini), "the package's pgbouncer.ini")
		require.NoError(t, os.WriteFile(ini, []byte(postgres.RenderPgBouncerIni(pc)), 0o644), "pgbouncer.ini")
		require.NoError(t, os.WriteFile(auth, []byte(postgres.Userlist(conf.ApplicationUser, debAppPassword)), 0o644), "userlist.txt")
		began := time.Now()
		bouncer := pb.run(t, postgres.PoolerUIDForTest, nil, "pgbouncer", "/etc/pgbouncer/pgbouncer.ini")
		c := waitLogin(t, bouncer, dsn(conf.ApplicationUser, debAppPassword, pc.ListenPort, conf.ApplicationDB)+"&default_query_exec_mode=exec", 30*time.Second)
		var n int
		require.NoError(t, c.QueryRow(ctx, "SELECT id FROM kept").Scan(&n), "a query through PgBouncer")
		assert.Equal(t, 42, n, "PgBouncer reaches the primary")
		t.Logf("pgbouncer (Debian image, uid %d, rendered ini): first query answered %v after start", postgres.PoolerUIDForTest, time.Since(began).Round(time.Millisecond))
		bouncer.stop(t)
	})

	replica.stop(t)
	_ = app.Close(ctx)
	primary.stop(t)
	began = time.Now()
	again := startPrimary()
	app2 := waitLogin(t, again, appDSN, time.Minute)
	secondStart := time.Since(began)
	assert.Contains(t, again.output(), "holds a cluster; starting it as it is", "the second start skips the initialisation")
	assert.NotContains(t, again.output(), "initdb", "initdb does not run again")
	require.NoError(t, app2.QueryRow(ctx, "SELECT id FROM kept").Scan(&kept), "the data survived the restart")
	assert.Equal(t, 42, kept, "the row written before the restart")
	t.Logf("postgres (Debian image, uid %d, rendered start.sh): first start with initdb and roles until an app login %v; pg_basebackup -R of the replica %v; second start skipping init %v",
		postgres.PostgresUIDForTest, firstStart.Round(time.Millisecond), basebackup.Round(time.Millisecond), secondStart.Round(time.Millisecond))
	again.stop(t)
}
