module gort.dev/integration/backendsreport

go 1.21
