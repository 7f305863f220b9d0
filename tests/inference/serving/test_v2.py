"""The Open Inference Protocol (KServe v2) on the serving port, through the official
Triton client (tritonclient.http) against a real worker: every route, JSON tensors and
the binary tensor data extension (the client's default)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.inference.serving.conftest import QUIET, bearer, token
from tests.inference.support import make_slot, torch_version
from tests.workerproc import start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
X = np.arange(8, dtype=np.float32).reshape(2, 4) / 10


def client_for(worker_proc) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=worker_proc.serve_url.removeprefix("http://"))


def reference(worker_proc, slot: str = "det", name: str = "x") -> np.ndarray:
    answer = httpx.post(f"{worker_proc.url}/infer/{slot}", json={"inputs": {name: X.tolist()}})
    assert answer.status_code == 200, answer.text
    return np.asarray(next(iter(answer.json()["outputs"].values())), dtype=np.float32)


def infer(client, headers, *, binary_in: bool, binary_out: bool | None, **kwargs):
    given = triton.InferInput("x", list(X.shape), "FP32")
    given.set_data_from_numpy(X, binary_data=binary_in)
    outputs = None if binary_out is None else [triton.InferRequestedOutput("y", binary_out)]
    # A copy: the client adds its own headers (Content-Encoding, ...) to the dict it gets.
    return client.infer("det", [given], outputs=outputs, headers=dict(headers), **kwargs)


def refused(call) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call()
    return caught.value


def test_server_health_and_metadata(worker_proc, owner):
    headers = bearer(token(owner))
    client = client_for(worker_proc)
    assert client.is_server_live() and client.is_server_ready()  # probes: no token
    metadata = client.get_server_metadata(headers=headers)
    assert metadata["name"] == "modelmgr" and "binary_tensor_data" in metadata["extensions"]
    assert refused(lambda: client.get_server_metadata()).status() == "401"


def test_model_metadata_and_readiness_follow_the_served_version(worker_proc, owner):
    headers = bearer(token(owner))
    client = client_for(worker_proc)
    expected = {
        "name": "det",
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
    }
    assert client.get_model_metadata("det", headers=headers) == expected
    assert client.get_model_metadata("det", "1", headers=headers) == expected
    wrong = refused(lambda: client.get_model_metadata("det", "2", headers=headers))
    assert wrong.status() == "404"
    assert "serves version '1' (clf@1), not '2'" in wrong.message()
    unknown = refused(lambda: client.get_model_metadata("nope", headers=headers))
    assert unknown.status() == "404" and "'nope' is not served" in unknown.message()
    assert client.is_model_ready("det", headers=headers)
    assert client.is_model_ready("det", "1", headers=headers)
    assert not client.is_model_ready("det", "2", headers=headers)
    assert not client.is_model_ready("nope", headers=headers)
    assert not client.is_model_ready("det")  # no token


@pytest.mark.parametrize("binary_in", [False, True], ids=["json-in", "binary-in"])
@pytest.mark.parametrize("binary_out", [False, True, None], ids=["json-out", "binary-out", "all"])
def test_infer_json_and_binary_tensors_match_the_model(worker_proc, owner, binary_in, binary_out):
    expected = reference(worker_proc)
    headers = bearer(token(owner))
    client = client_for(worker_proc)
    result = infer(
        client, headers, binary_in=binary_in, binary_out=binary_out, request_id="frame-7"
    )
    np.testing.assert_allclose(result.as_numpy("y"), expected, rtol=1e-6)
    response = result.get_response()
    assert response["model_name"] == "det" and response["model_version"] == "1"
    assert response["id"] == "frame-7"
    (output,) = response["outputs"]
    assert output["datatype"] == "FP32" and output["shape"] == [2, 2]
    # None: no outputs named, the client asks binary_data_output for all.
    assert ("data" in output) is (binary_out is False)
    versioned = infer(
        client, headers, binary_in=binary_in, binary_out=binary_out, model_version="1"
    )
    np.testing.assert_allclose(versioned.as_numpy("y"), expected, rtol=1e-6)


def test_infer_with_a_gzipped_request_and_the_binary_headers_on_the_wire(worker_proc, owner):
    expected = reference(worker_proc)
    headers = bearer(token(owner))
    result = infer(
        client_for(worker_proc),
        headers,
        binary_in=True,
        binary_out=True,
        request_compression_algorithm="gzip",
    )
    np.testing.assert_allclose(result.as_numpy("y"), expected, rtol=1e-6)
    # By hand: 16 bytes of FP32 after the JSON header, as curl would send them.
    head = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"parameters":{"binary_data_size":16}}],"outputs":[{"name":"y","parameters":{"binary_data":true}}]}'  # noqa: E501
    raw = httpx.post(
        worker_proc.serve_url + "/v2/models/det/infer",
        content=head + X[:1].tobytes(),
        headers={**headers, "Inference-Header-Content-Length": str(len(head))},
    )
    assert raw.status_code == 200, raw.text
    length = int(raw.headers["inference-header-content-length"])
    assert raw.headers["content-type"] == "application/octet-stream"
    assert len(raw.content) == length + 8  # one row of two float32
    np.testing.assert_allclose(
        np.frombuffer(raw.content[length:], dtype=np.float32), expected[0], rtol=1e-6
    )


def test_infer_errors_come_back_as_v2_errors_naming_the_problem(worker_proc, owner):
    headers = bearer(token(owner))
    client = client_for(worker_proc)
    as_double = triton.InferInput("x", [2, 4], "FP64")
    as_double.set_data_from_numpy(X.astype(np.float64))
    dtype = refused(lambda: client.infer("det", [as_double], headers=dict(headers)))
    assert dtype.status() == "422" and "expects dtype float32, got float64" in dtype.message()
    short = triton.InferInput("x", [2, 3], "FP32")
    short.set_data_from_numpy(X[:, :3].copy())
    shape = refused(lambda: client.infer("det", [short], headers=dict(headers)))
    assert shape.status() == "422" and "expects shape [batch, 4]" in shape.message()
    given = triton.InferInput("x", [2, 4], "FP32")
    given.set_data_from_numpy(X)
    output = refused(
        lambda: client.infer(
            "det", [given], outputs=[triton.InferRequestedOutput("z")], headers=dict(headers)
        )
    )
    assert output.status() == "400" and "unknown output 'z' (the model gives y)" in output.message()
    version = refused(
        lambda: client.infer("det", [given], model_version="9", headers=dict(headers))
    )
    assert version.status() == "404" and "not '9'" in version.message()
    with httpx.Client(base_url=worker_proc.serve_url, headers=headers, timeout=30) as raw:
        cases = [
            (b"{not json", "not valid JSON"),
            (b'{"inputs": []}', '"inputs"'),
            (
                b'{"inputs":[{"name":"x","datatype":"BYTES","shape":[1],"data":["a"]}]}',
                "datatype 'BYTES' is not supported",
            ),
            (
                b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3]}]}',
                "shape [1, 4] holds 4 values, data has 3",
            ),
        ]
        for body, message in cases:
            response = raw.post("/v2/models/det/infer", content=body)
            assert response.status_code == 400, body
            assert message in response.json()["error"], response.json()
        assert raw.get("/v2/models/det/infer").status_code == 405
        assert raw.get("/v2/models/det/nothing").json()["error"].startswith("no such endpoint")


def test_wrong_slot_token_is_refused_through_the_client(worker_proc, owner):
    limited = bearer(token(owner, slots=("policy",), name="policy-robot"))
    client = client_for(worker_proc)
    given = triton.InferInput("x", [2, 4], "FP32")
    given.set_data_from_numpy(X)
    error = refused(lambda: client.infer("det", [given], headers=limited))
    assert error.status() == "403" and "may not use slot 'det'" in error.message()
    bad = refused(lambda: client.get_model_metadata("det", headers=bearer("mm_bad")))
    assert bad.status() == "401" and "invalid or revoked" in bad.message()


def test_a_torchscript_model_over_v2(owner, model_files, tmp_path):
    version = torch_version(owner, model_files, tmp_path, kind="torchscript")
    make_slot("arm", version)
    with start_worker(env=QUIET) as worker_proc:
        worker_proc.wait_ready()
        expected = reference(worker_proc, "arm", "input")
        headers = bearer(token(owner))
        client = client_for(worker_proc)
        metadata = client.get_model_metadata("arm", headers=headers)
        assert metadata["platform"] == "pytorch_libtorch" and metadata["versions"] == ["1"]
        assert metadata["inputs"][0]["name"] == "input"
        given = triton.InferInput("input", [2, 4], "FP32")
        given.set_data_from_numpy(X)
        result = client.infer("arm", [given], headers=headers)
        np.testing.assert_allclose(result.as_numpy("output"), expected, rtol=1e-6)
