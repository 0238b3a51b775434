// mkimages builds container images from local files without Docker or a
// registry (github.com/google/go-containerregistry). Its own module, so that
// kubeboot's go.mod does not carry go-containerregistry.
module github.com/kubeboot/kubeboot/test/e2e/mkimages

go 1.25.0

require github.com/google/go-containerregistry v0.22.1

require (
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
)
