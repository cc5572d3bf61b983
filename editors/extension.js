// Starts `metrictree lsp` (stdio) for .tree files. Highlighting works without it.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("metrictree").get("command", ["metrictree", "lsp"]);
  if (!command.length) {
    return;
  }
  const server = { command: command[0], args: command.slice(1) };
  client = new LanguageClient("metrictree", "metrictree", server, {
    documentSelector: [{ scheme: "file", language: "metrictree" }],
  });
  context.subscriptions.push(client);
  client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
