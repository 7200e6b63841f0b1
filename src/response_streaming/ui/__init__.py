"""The Streamlit front end, in small pieces: `page` (the flow of one run), `sidebar` (conversations,
model, parameters), `messages` (a stored message and its actions), `live` (an answer while it
streams, and Stop), `format` (metrics and labels as text). None of them imports a provider SDK."""
