package topology

import "testing"

func TestListenAddr(t *testing.T) {
	if got := ListenAddr(GatewayHTTPPort); got != ":8080" {
		t.Fatalf("ListenAddr(%d) = %q, want \":8080\"", GatewayHTTPPort, got)
	}
}

// The ports a service binds on one host must differ, or the second service
// started fails with "address already in use".
func TestLocalPortsDistinct(t *testing.T) {
	seen := map[int]string{}
	for name, p := range map[string]int{
		"gateway http": GatewayHTTPPort, "gateway admin": AdminHTTPPort,
		"users grpc": UsersGRPCPort, "users admin": UsersLocalAdminPort,
		"worker admin": WorkerLocalAdminPort,
	} {
		if other, ok := seen[p]; ok {
			t.Errorf("%s and %s both default to port %d", name, other, p)
		}
		seen[p] = name
	}
}
