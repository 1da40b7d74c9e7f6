module gort.dev/integration/runtimeload

go 1.21
