module gort.dev/integration/leaky

go 1.21
