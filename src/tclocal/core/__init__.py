"""The shared core every service uses: database, blobs, Hawk, scopes and roles, errors, time, validation."""
