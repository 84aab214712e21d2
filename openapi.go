// Package eventsvc holds what the service ships beside its code: the OpenAPI
// document generated from the schema.
package eventsvc

import _ "embed"

// OpenAPIv2 is the OpenAPI (Swagger 2.0) document of the REST API, generated
// by protoc-gen-openapiv2 from proto/ and the HTTP mapping beside it.
//
//go:embed gen/openapiv2/eventsvc.swagger.json
var OpenAPIv2 []byte
