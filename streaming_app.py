"""The lab's page, kept as its face: `streamlit run streaming_app.py --server.port 8080`."""
from response_streaming.webapp import main

main()
