"""Constants the emulator tests share (importable by name: ``conftest`` is ambiguous across folders).

``GEMINI_PATH`` is the path google-genai dials for the Developer API with ``api_version="v1beta"``;
``TEST_CHUNK_DELAY`` paces replies so tests stay fast while streaming stays real.
"""

GEMINI_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
VERTEX_PATH = "/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"
TEST_CHUNK_DELAY = 0.002
