module meshfit.io/hack/loadgen

go 1.26
