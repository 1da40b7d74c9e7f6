module gort.dev/integration/httpserver

go 1.21
