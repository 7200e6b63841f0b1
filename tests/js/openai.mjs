// The `openai` package as an app would use it: `new OpenAI()` reads OPENAI_BASE_URL and OPENAI_API_KEY
// from the environment. A streamed chat completion; prints one JSON line: {"text"} or {"error": {...}}.
import OpenAI from "openai";

const client = new OpenAI({ maxRetries: 0 });
let text = "";
let at = "request";
try {
  const stream = await client.chat.completions.create({
    model: "gpt-4o-mini", messages: [{ role: "user", content: "Say it." }], stream: true });
  at = "stream";
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
  console.log(JSON.stringify({ text }));
} catch (err) {
  console.log(JSON.stringify({ text, error: { name: err.constructor.name, message: err.message, at,
                                              apiError: err instanceof OpenAI.APIError,
                                              status: err.status ?? null } }));
}
