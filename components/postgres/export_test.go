package postgres

// The uids the pods run as, for the external tests that run the Debian
// images' programs as the pods would.
const (
	PostgresUIDForTest = postgresUID
	PoolerUIDForTest   = poolerUID
)
