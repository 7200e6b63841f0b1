"""Wire formats we speak: AWS binary event stream (Bedrock), server-sent events (OpenAI, SSE)."""
