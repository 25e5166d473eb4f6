Balances = Balances or { [Owner] = "1000000" }
Handlers.add("Transfer", Handlers.utils.hasMatchingTag("Action", "Transfer"), function(msg)
  local qty = tonumber(msg.Quantity)
  local bal = tonumber(Balances[msg.From] or "0")
  if not qty or qty <= 0 or bal < qty then
    ao.send({ Target = msg.From, Action = "Transfer-Error", Error = "Insufficient Balance!" })
    return
  end
  Balances[msg.From] = tostring(bal - qty)
  Balances[msg.Recipient] = tostring(tonumber(Balances[msg.Recipient] or "0") + qty)
  ao.send({ Target = msg.From, Action = "Debit-Notice", Recipient = msg.Recipient, Quantity = msg.Quantity })
  ao.send({ Target = msg.Recipient, Action = "Credit-Notice", Sender = msg.From, Quantity = msg.Quantity })
end)
return "token"
