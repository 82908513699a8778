"""OpenCV video processors for va-actors.

``FaceDetector`` (entry point ``opencv.faces``) finds frontal faces with a
Haar cascade, sends a :class:`FacesDetectedEvent` per processed frame and
publishes the frames with the faces boxed on its own track. The cascade XML
ships in ``opencv-python-headless`` < 5: nothing is downloaded. See the plugin
README for parameters and measured figures.
"""

from .events import FacesDetectedEvent
from .faces import FaceDetector

__all__ = ["FaceDetector", "FacesDetectedEvent"]
