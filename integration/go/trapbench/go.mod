module gort.dev/integration/trapbench

go 1.21
