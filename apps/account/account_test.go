package account

import (
	"strings"
	"testing"
)

func TestUserIDIsStableValidAndDistinct(t *testing.T) {
	a, b := UserID("ada@example.com"), UserID("bob@example.com")
	if a != UserID("ada@example.com") {
		t.Errorf("UserID not deterministic: %s", a)
	}
	if a == b {
		t.Errorf("two emails share id %s", a)
	}
	if !ValidUserID(a) {
		t.Errorf("ValidUserID(%q) = false, want true", a)
	}
	for _, bad := range []string{"", "x", strings.ToUpper(a), a + "0", strings.Replace(a, "-", "x", 1)} {
		if ValidUserID(bad) {
			t.Errorf("ValidUserID(%q) = true, want false", bad)
		}
	}
}

func TestPasswordHashVerifies(t *testing.T) {
	p := HashParams{Time: 1, Memory: 64, Threads: 1}
	h, err := HashPassword("correct horse", p)
	if err != nil {
		t.Fatalf("HashPassword: %v", err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("hash %q is not a PHC argon2id string with the parameters", h)
	}
	if ok, err := VerifyPassword("correct horse", h); !ok || err != nil {
		t.Errorf("VerifyPassword(right) = %v, %v; want true, nil", ok, err)
	}
	if ok, err := VerifyPassword("wrong horse", h); ok || err != nil {
		t.Errorf("VerifyPassword(wrong) = %v, %v; want false, nil", ok, err)
	}
	for _, bad := range []string{"", "$argon2id$v=19$m=64,t=1,p=0$AAAA$AAAA", "$bcrypt$x$y$z$w", "$argon2id$v=19$m=99999999,t=1,p=1$AAAA$AAAA"} {
		if _, err := VerifyPassword("x", bad); err == nil {
			t.Errorf("VerifyPassword(%q) accepted a malformed or abusive hash", bad)
		}
	}
}
