module gort.dev/integration/parked

go 1.21
