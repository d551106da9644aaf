# Widemesh example: a minimal HTTP server on $PORT with the standard library's TCPServer (WEBrick
# left the standard library in Ruby 3.0). Stops cleanly on SIGTERM.
require "socket"

port = Integer(ENV.fetch("PORT", "8080"))
server = TCPServer.new("0.0.0.0", port)
$stdout.sync = true
puts "listening on 0.0.0.0:#{port}"

stop = false
Signal.trap("TERM") { stop = true }

def answer(client, status, body)
  reason = { 200 => "OK", 404 => "Not Found" }.fetch(status)
  client.write("HTTP/1.1 #{status} #{reason}\r\nContent-Type: text/plain\r\n" \
               "Content-Length: #{body.bytesize}\r\nConnection: close\r\n\r\n#{body}")
end

until stop
  next unless IO.select([server], nil, nil, 0.2)

  client = server.accept
  request = client.gets.to_s
  while (line = client.gets) && line != "\r\n"; end
  path = request.split(" ")[1]
  case path
  when "/healthz" then answer(client, 200, "ok\n")
  when "/" then answer(client, 200, "hello from ruby\n")
  else answer(client, 404, "not found\n")
  end
  client.close
end
puts "stopped"
