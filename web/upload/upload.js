// The upload page script is being built.
