"""The handlers invoked in-process with API Gateway events, over moto's S3."""

import base64
import io
import json
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import joblib

from bench.common import (
    BUCKET,
    PREDICT_PATHS,
    REPO_ROOT,
)
from registry.http.gateway import (
    LocalLambdaContext,
    build_event,
    load_function_module,
    load_template,
    routes_from_template,
)


class Harness:
    def __init__(self, endpoint: str, quick: bool, mlflow_venv: Path | None = None) -> None:
        self.endpoint = endpoint
        self.quick = quick
        self.mlflow_venv = mlflow_venv
        self.mlflow_versions: dict[str, str] = {}
        self.s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        self.routes = {
            (route.method, route.path): route for route in routes_from_template(load_template())
        }
        self.register_app = load_function_module(REPO_ROOT / "functions" / "register")
        self.predict_app = load_function_module(REPO_ROOT / "functions" / "predict")
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-"))

    def reps(self, full: int) -> int:
        return max(3, full // 100) if self.quick else full

    def batch_sizes(self) -> tuple[int, ...]:
        return (1_000, 2_000) if self.quick else (1_000, 10_000, self.largest_batch())

    def handler_call(
        self, method: str, path: str, body: Any, query: dict[str, str] | None = None
    ) -> Callable[[], dict[str, Any]]:
        """One API Gateway event, built once; calling the result is what Lambda times."""
        route = self.routes[(method, path)]
        data = json.dumps(body).encode()
        queries = {key: [value] for key, value in (query or {}).items()}
        event = build_event(route, method, path, {}, queries, {}, data)
        app = self.predict_app if path in PREDICT_PATHS else self.register_app
        context = LocalLambdaContext(route.function)
        return lambda: app.lambda_handler(event, context)

    def invoke(self, method: str, path: str, body: Any, query: dict[str, str] | None = None) -> Any:
        response = self.handler_call(method, path, body, query)()
        assert response["statusCode"] in (200, 201), response["body"][:500]
        return json.loads(response["body"])

    def register(self, name: str, model: Any) -> int:
        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        body = {"name": name, "artifact": base64.b64encode(buffer.getvalue()).decode()}
        return int(self.invoke("POST", "/models", body)["version"])

    def blog_request(self, key: str, row: tuple[float, float]) -> Callable[[], Any]:
        """The blog's handler body: download, unpickle and predict on every request."""
        temp_file_path = str(self.tmp / key.replace("/", "_"))

        def request() -> Any:
            self.s3.download_file(BUCKET, key, temp_file_path)
            with open(temp_file_path, "rb") as pickled:
                model = pickle.load(pickled)
            return model.predict([[float(row[0]), float(row[1])]])[0]

        return request

    def upload_blog_model(self, model: Any, key: str) -> None:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=pickle.dumps(model))
