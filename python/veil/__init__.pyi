from os import PathLike
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from ._veil import Diagnostic as Diagnostic
from ._veil import InputError as InputError
from ._veil import Model as Model
from ._veil import VeilError as VeilError
from ._veil import compile as compile
from .sklearn import SklearnModel

class VeilWarning(UserWarning): ...

class CheckedRun(Dict[str, Dict[str, np.ndarray]]):
    reference: Dict[str, np.ndarray]
    errors: List[Dict[str, Any]]
    worst: float
    text: str

def party(
    model: Union[Model, SklearnModel],
    *,
    as_: str,
    config: Union[str, PathLike[str]],
    inputs: Optional[Mapping[str, npt.ArrayLike]] = None,
    **options: Any,
) -> Dict[str, np.ndarray]: ...
def from_sklearn(
    estimator: Any,
    X_sample: npt.ArrayLike,
    *,
    margin: float = 0.1,
    per_feature: bool = False,
    **options: Any,
) -> SklearnModel: ...
def import_onnx(
    path: Union[str, PathLike[str]],
    *,
    calibrate: Optional[Mapping[str, npt.ArrayLike]] = None,
    ranges: Optional[Mapping[str, Tuple[float, float]]] = None,
    dealer: bool = True,
    data_owner: str = "client",
    model_owner: str = "server",
    precision: Optional[int] = None,
    **options: Any,
) -> Model: ...
