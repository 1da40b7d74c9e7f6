module gort.dev/integration/pingpong

go 1.21
