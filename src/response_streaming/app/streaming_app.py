"""The page file `response-streaming app` hands to Streamlit: the installed twin of the checkout's
`streaming_app.py`. Streamlit runs it as a script, so it imports the package by its full name."""
from response_streaming.webapp import main

main()
