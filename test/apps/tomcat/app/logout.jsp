<%@ page session="false" %><%
  // Ends the container's session and login; POST only, as a logout should be.
  if (!"POST".equals(request.getMethod())) { response.sendError(405); return; }
  request.logout();
  jakarta.servlet.http.HttpSession s = request.getSession(false);
  if (s != null) s.invalidate();
  response.sendRedirect(request.getContextPath() + "/");
%>
