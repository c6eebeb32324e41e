// Package usersv1 holds the generated protobuf and gRPC code of the users
// service API. Regenerate it with `go generate ./apps/users/api` after
// editing users.proto: it needs protoc on PATH (Debian's protobuf-compiler);
// the two plugins are built from the versions pinned in go.mod.
package usersv1

//go:generate go build -o .bin/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
//go:generate go build -o .bin/protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc
//go:generate protoc -I . -I /usr/include --plugin=protoc-gen-go=.bin/protoc-gen-go --plugin=protoc-gen-go-grpc=.bin/protoc-gen-go-grpc --go_out=paths=source_relative:. --go-grpc_out=paths=source_relative:. users.proto
