module gort.dev/integration/rtstats

go 1.21
