//go:build purego

package gcm

// puregoBuild: Go refuses FIPS 140-3 mode in a purego build.
const puregoBuild = true
