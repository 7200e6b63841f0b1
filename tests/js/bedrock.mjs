// The AWS SDK for JavaScript v3 as an app would use it: default client (its default HTTP/2 handler),
// only `endpoint` and `region` set; credentials from the environment. Prints one JSON line:
// {"text": ...} or {"error": {"name", "message", "at"}}.
import {
  BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand, InvokeModelCommand,
  InvokeModelWithResponseStreamCommand,
} from "@aws-sdk/client-bedrock-runtime";

const [op, modelId = "amazon.nova-lite-v1:0"] = process.argv.slice(2);
const client = new BedrockRuntimeClient({ endpoint: process.env.ENDPOINT, region: "us-east-1", maxAttempts: 1 });
const messages = [{ role: "user", content: [{ text: "Say it." }] }];
const anthropic = { anthropic_version: "bedrock-2023-05-31", max_tokens: 500,
                    messages: [{ role: "user", content: "Say it." }] };
let text = "";
let at = "request";
try {
  if (op === "converse") {
    const out = await client.send(new ConverseCommand({ modelId, messages }));
    text = out.output.message.content[0].text;
  } else if (op === "converse-stream") {
    const out = await client.send(new ConverseStreamCommand({ modelId, messages }));
    at = "stream";
    for await (const event of out.stream) {
      if (event.contentBlockDelta) text += event.contentBlockDelta.delta.text;
    }
  } else if (op === "invoke") {
    const out = await client.send(new InvokeModelCommand({ modelId: "anthropic.claude-3-haiku-20240307-v1:0",
                                                            body: JSON.stringify(anthropic) }));
    text = JSON.parse(new TextDecoder().decode(out.body)).content[0].text;
  } else if (op === "invoke-with-response-stream") {
    const out = await client.send(new InvokeModelWithResponseStreamCommand({
      modelId: "anthropic.claude-3-haiku-20240307-v1:0", body: JSON.stringify(anthropic) }));
    at = "stream";
    for await (const event of out.body) {
      const chunk = JSON.parse(new TextDecoder().decode(event.chunk.bytes));
      if (chunk.type === "content_block_delta") text += chunk.delta.text;
    }
  } else {
    throw new Error(`unknown op ${op}`);
  }
  console.log(JSON.stringify({ text }));
} catch (err) {
  console.log(JSON.stringify({ text, error: { name: err.name, message: err.message, at,
                                              status: err.$metadata?.httpStatusCode ?? null } }));
}
client.destroy();
