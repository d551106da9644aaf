// The OpenAPI drift tests are being written.
