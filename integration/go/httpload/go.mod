module gort.dev/integration/httpload

go 1.21
