"""Type stubs of the extension module `veil._veil` (python/src/lib.rs)."""

from os import PathLike
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike
Dim = Union[int, str]

class VeilError(Exception):
    diagnostics: List["Diagnostic"]

class InputError(VeilError): ...

class Diagnostic:
    code: str
    severity: str
    message: str
    span: Optional[Tuple[int, int]]
    line: Optional[int]
    column: Optional[int]
    labels: List[Tuple[int, int, str, bool]]
    notes: List[str]
    help: Optional[str]

class Model:
    @property
    def name(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def parties(self) -> Dict[str, str]: ...
    @property
    def inputs(self) -> Dict[str, Tuple[str, Tuple[Dim, ...], Tuple[float, float]]]: ...
    @property
    def outputs(self) -> Dict[str, Tuple[List[str], Tuple[Dim, ...], float]]: ...
    @property
    def bound(self) -> List[str]: ...
    @property
    def warnings(self) -> List[Diagnostic]: ...
    @property
    def last_stats(self) -> Optional[Dict[str, Any]]: ...
    def report(self) -> str: ...
    def plan_json(self) -> str: ...
    def plan_text(self) -> str: ...
    def dot(self) -> str: ...
    def graph(self) -> str: ...
    def bind(self, inputs: Mapping[str, ArrayLike]) -> "Model": ...
    def run(
        self,
        inputs: Optional[Mapping[str, ArrayLike]] = None,
        *,
        check: bool = False,
        timeout: float = 120.0,
        max_memory: Optional[int] = None,
    ) -> Dict[str, Dict[str, np.ndarray]]: ...
    def _repr_html_(self) -> str: ...

def compile(
    path: Optional[Union[str, PathLike[str]]] = None,
    *,
    source: Optional[str] = None,
    name: Optional[str] = None,
    dealer: bool = True,
    network: str = "lan",
    bandwidth: Optional[float] = None,
    latency: Optional[float] = None,
    correlations: Optional[str] = None,
    key_bits: int = 3072,
    prefer: Optional[str] = None,
    assume: Optional[Mapping[str, int]] = None,
) -> Model: ...
def party(
    model: Model,
    *,
    as_: str,
    config: Union[str, PathLike[str]],
    inputs: Optional[Mapping[str, ArrayLike]] = None,
    session: str = "default",
    timeout: float = 120.0,
    connect_timeout: float = 60.0,
    max_frame_mib: int = 1024,
    chunk_rows: Optional[int] = None,
) -> Dict[str, np.ndarray]: ...
def _panic_for_tests() -> None: ...
def _input_address_for_tests(value: ArrayLike) -> int: ...

def _import_onnx(
    path: str,
    *,
    calibrate: Optional[Mapping[str, Any]] = None,
    ranges: Optional[Mapping[str, Tuple[float, float]]] = None,
    dealer: bool = True,
    data_owner: str = "client",
    model_owner: str = "server",
    precision: Optional[int] = None,
) -> Tuple[str, Dict[str, Any], List[str]]: ...
