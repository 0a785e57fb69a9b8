<%@ page contentType="text/html; charset=UTF-8" %><!doctype html><title>login failed</title>
<p>bad credentials</p>
<form method="post" action="<%= response.encodeURL("j_security_check") %>">
<input name="j_username"> <input name="j_password" type="password"> <button>log in</button></form>
