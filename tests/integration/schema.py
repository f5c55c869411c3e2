"""Validates ebsd's JSON responses against the component schemas of openapi.yaml."""
import json
import os

import jsonschema
import yaml

from harness import SOURCE_DIR

_spec = None


def spec():
    global _spec
    if _spec is None:
        with open(os.path.join(SOURCE_DIR, "openapi.yaml")) as f:
            _spec = yaml.safe_load(f)
    return _spec


def validate(body, schema_name):
    """body: bytes/str/dict. Raises jsonschema.ValidationError if it does not conform."""
    doc = json.loads(body) if isinstance(body, (bytes, str)) else body
    s = spec()
    schema = dict(s["components"]["schemas"][schema_name])
    schema["components"] = s["components"]
    # OpenAPI 3.1 schemas are JSON Schema 2020-12; refs point into #/components/schemas.
    jsonschema.Draft202012Validator(schema).validate(doc)
    return doc
