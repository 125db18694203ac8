#pragma once
// docs/openapi.yaml as compact JSON, built in (api/openapi_embed.py): what
// GET /v1/openapi.json answers.

#include <string_view>

namespace runlog::api {

extern const std::string_view kOpenApiJson;

}  // namespace runlog::api
