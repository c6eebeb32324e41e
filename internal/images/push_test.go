package images

import (
	"context"
	"encoding/base64"
	"errors"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testRegistry is a real OCI registry (go-containerregistry's) on a
// loopback port, counting the uploads and manifest writes it takes and,
// when user is set, demanding basic auth and keeping what it was given.
type testRegistry struct {
	host string
	mu   sync.Mutex
	// uploads counts blob upload sessions, manifests manifest PUTs.
	uploads, manifests int
	auths              []string
}

func startRegistry(t *testing.T, user, pass string) *testRegistry {
	t.Helper()
	tr := &testRegistry{}
	reg := registry.New(registry.Logger(log.New(discard{}, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.mu.Lock()
		if h := r.Header.Get("Authorization"); h != "" {
			tr.auths = append(tr.auths, h)
		}
		if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/blobs/uploads") {
			tr.uploads++
		}
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			tr.manifests++
		}
		tr.mu.Unlock()
		if user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	tr.host = strings.TrimPrefix(srv.URL, "http://")
	return tr
}

func (tr *testRegistry) counts() (int, int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.uploads, tr.manifests
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// archive writes two random images tagged under registry into a
// docker-archive, as `images build --out` does, and returns them by ref.
func archive(t *testing.T, registry string) (string, map[string]v1.Image) {
	t.Helper()
	imgs := map[string]v1.Image{}
	var tagged []Tagged
	for _, svc := range []string{"gateway", "users"} {
		img, err := random.Image(1024, 3)
		require.NoError(t, err, "random image")
		ref := registry + "/scaleplane/" + svc + ":0.1.0"
		imgs[ref] = img
		dref, err := DigestTag(registry+"/scaleplane/"+svc, img)
		require.NoError(t, err, "digest tag")
		tagged = append(tagged, Tagged{Image: img, Refs: []string{ref, dref}})
	}
	file := filepath.Join(t.TempDir(), "images.tar")
	require.NoError(t, WriteTarball(file, tagged), "write the archive")
	return file, imgs
}

func refsOf(m map[string]v1.Image) []string {
	var out []string
	for r := range m {
		out = append(out, r)
	}
	return out
}

func TestPushByDigestThenPullTheSameBits(t *testing.T) {
	reg := startRegistry(t, "", "")
	file, imgs := archive(t, reg.host)
	var log strings.Builder
	pushed, err := Push(context.Background(), PushOptions{Archive: file, Refs: refsOf(imgs), Registry: reg.host + "/scaleplane", Auth: authn.Anonymous, Log: &log})
	require.NoError(t, err, "push")
	require.Len(t, pushed, 2, "both images")
	for _, p := range pushed {
		want := imgs[p.Ref]
		wd, _ := want.Digest()
		assert.True(t, strings.HasSuffix(p.DigestRef, "@"+wd.String()), "%s: reported by its digest (%s)", p.Ref, p.DigestRef)
		assert.Contains(t, log.String(), p.DigestRef, "the log prints reference@digest")
		assert.False(t, p.Skipped, "first push uploads")

		d, err := name.NewDigest(p.DigestRef)
		require.NoError(t, err, "digest reference")
		got, err := remote.Image(d)
		require.NoError(t, err, "pull %s by digest", d)
		gd, _ := got.Digest()
		assert.Equal(t, wd, gd, "%s: the pulled manifest is the built one", p.Ref)
		wl, _ := want.Layers()
		gl, _ := got.Layers()
		require.Len(t, gl, len(wl), "same number of layers")
		for i := range wl {
			a, _ := wl[i].Digest()
			b, _ := gl[i].Digest()
			assert.Equal(t, a, b, "%s layer %d", p.Ref, i)
		}
		tag, _ := name.NewTag(p.Ref)
		desc, err := remote.Head(tag)
		require.NoError(t, err, "the tag exists")
		assert.Equal(t, wd, desc.Digest, "%s: the tag names the pushed digest", p.Ref)
	}

	up, man := reg.counts()
	again, err := Push(context.Background(), PushOptions{Archive: file, Refs: refsOf(imgs), Registry: reg.host + "/scaleplane", Auth: authn.Anonymous})
	require.NoError(t, err, "second push")
	up2, man2 := reg.counts()
	assert.Equal(t, up, up2, "a second push uploads no blob")
	assert.Equal(t, man, man2, "a second push writes no manifest")
	for _, p := range again {
		assert.True(t, p.Skipped, "%s already there", p.Ref)
	}
}

func TestPushRefusesAnotherRegistryAndAChangedTag(t *testing.T) {
	reg := startRegistry(t, "", "")
	file, imgs := archive(t, reg.host)
	_, err := Push(context.Background(), PushOptions{Archive: file, Refs: refsOf(imgs), Registry: "123456789012.dkr.ecr.us-east-1.amazonaws.com/scaleplane", Auth: authn.Anonymous})
	require.Error(t, err, "a reference outside the stack's registry is refused")
	assert.Contains(t, err.Error(), "not in the stack's registry", "the error says why")
	up, man := reg.counts()
	assert.Zero(t, up+man, "nothing was sent")

	// A rebuild with different bits under the same (immutable) tag.
	_, err = Push(context.Background(), PushOptions{Archive: file, Refs: refsOf(imgs), Registry: reg.host, Auth: authn.Anonymous})
	require.NoError(t, err, "first push")
	other, _ := archive(t, reg.host)
	_, err = Push(context.Background(), PushOptions{Archive: other, Refs: refsOf(imgs), Registry: reg.host, Auth: authn.Anonymous})
	require.Error(t, err, "a tag that names other bits is refused")
	assert.Contains(t, err.Error(), "tags are immutable", "the error says what to do")
	assert.Equal(t, 2, strings.Count(err.Error(), "scaleplane/"), "one error per image: %v", err)
}

type fakeECR struct {
	token string
	err   error
	calls int
}

func (f *fakeECR) GetAuthorizationToken(context.Context, *ecr.GetAuthorizationTokenInput, ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return &ecr.GetAuthorizationTokenOutput{AuthorizationData: []ecrtypes.AuthorizationData{{AuthorizationToken: &f.token}}}, nil
}

func TestECRTokenIsTheBasicAuthUsed(t *testing.T) {
	reg := startRegistry(t, "AWS", "ecr-password-123")
	file, imgs := archive(t, reg.host)
	fake := &fakeECR{token: base64.StdEncoding.EncodeToString([]byte("AWS:ecr-password-123"))}
	auth, err := ECRAuthenticator(context.Background(), fake)
	require.NoError(t, err, "token to auth")
	_, err = Push(context.Background(), PushOptions{Archive: file, Refs: refsOf(imgs), Registry: reg.host, Auth: auth})
	require.NoError(t, err, "push with ECR's token")
	assert.Equal(t, 1, fake.calls, "one token call")
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("AWS:ecr-password-123"))
	reg.mu.Lock()
	defer reg.mu.Unlock()
	require.NotEmpty(t, reg.auths, "the registry was sent credentials")
	for _, a := range reg.auths {
		assert.Equal(t, want, a, "every request carries the decoded token as basic auth")
	}
}

func TestECRHostsUseTheTokenAndErrorsSayWhere(t *testing.T) {
	region, ok := ECRRegion("123456789012.dkr.ecr.eu-west-1.amazonaws.com")
	assert.True(t, ok, "an ECR host")
	assert.Equal(t, "eu-west-1", region, "its region")
	_, ok = ECRRegion("registry.example.com")
	assert.False(t, ok, "not ECR")

	reg, _ := name.NewRegistry("123456789012.dkr.ecr.eu-west-1.amazonaws.com")
	var asked string
	fake := &fakeECR{token: base64.StdEncoding.EncodeToString([]byte("AWS:pw"))}
	a, err := Authenticate(context.Background(), reg, func(_ context.Context, r string) (ECRTokens, error) { asked = r; return fake, nil })
	require.NoError(t, err, "ECR auth")
	assert.Equal(t, "eu-west-1", asked, "the client of the registry's region")
	cfg, err := a.Authorization()
	require.NoError(t, err, "authorization")
	assert.Equal(t, "AWS", cfg.Username, "ECR's user")
	assert.Equal(t, "pw", cfg.Password, "the token's password")

	chain := errors.New("no EC2 IMDS role found")
	_, err = Authenticate(context.Background(), reg, func(context.Context, string) (ECRTokens, error) { return &fakeECR{err: chain}, nil })
	require.ErrorIs(t, err, chain, "the credential chain's error surfaces")
	assert.Contains(t, err.Error(), "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "naming the registry")
	assert.Contains(t, err.Error(), "default chain", "and where credentials come from")

	_, err = ECRAuthenticator(context.Background(), &fakeECR{token: "not base64!"})
	assert.ErrorContains(t, err, "not base64", "a malformed token is reported")
}
