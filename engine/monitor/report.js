/* The script of the drift report page (engine/monitor/report_html.py inlines it into
   the one self-contained page, without this comment). Sorting (click or Enter on a
   header; numbers sort numerically, '–' last), filtering (name, status, type),
   '#sort=K' / '#sort=-K' in the URL to open the page sorted, and the tooltip of the
   charts (the bin under the pointer: its range or label, share and count per side).
   @PLOT_H@ is replaced by the y of the bars' baseline (the height of the highlight). Plain ES5, no library:
   the page loads nothing. */
(function(){
var T=document.getElementById("cols"),B=T.tBodies[0],H=T.tHead.rows[0].cells;
var q=document.getElementById("q"),fs=document.getElementById("fs"),
ft=document.getElementById("ft"),
n=document.getElementById("n"),each=Array.prototype.forEach;
function key(r,i,num){var c=r.cells[i],v=c.getAttribute("data-v");if(v===null)v=c.textContent;
if(num){v=parseFloat(v);return isNaN(v)?null:v}return v}
function sort(i,dir){var h=H[i],num=h.getAttribute("data-t")==="n";
if(!dir)dir=h.getAttribute("aria-sort")==="ascending"?-1:1;
for(var j=0;j<H.length;j++)H[j].removeAttribute("aria-sort");
h.setAttribute("aria-sort",dir>0?"ascending":"descending");
var rows=Array.prototype.map.call(B.rows,function(r,k){return[key(r,i,num),k,r]});
rows.sort(function(a,b){if(a[0]===null||b[0]===null){
if(a[0]===b[0])return a[1]-b[1];return a[0]===null?1:-1}
var c=num?a[0]-b[0]:a[0].localeCompare(b[0],undefined,{numeric:true,sensitivity:"base"});
return c*dir||a[1]-b[1]});
var f=document.createDocumentFragment();rows.forEach(function(x){f.appendChild(x[2])});
B.appendChild(f)}
each.call(H,function(h,i){if(!h.getAttribute("data-t"))return;h.tabIndex=0;
h.onclick=function(){sort(i)};
h.onkeydown=function(e){if(e.key==="Enter"||e.key===" "){e.preventDefault();sort(i)}}});
function filt(){var s=q.value.trim().toLowerCase(),st=fs.value,ty=ft.value,k=0;
each.call(B.rows,function(r){var c=r.cells[1],nm=c.getAttribute("data-v");
if(nm===null)nm=c.textContent;var ok=(!s||nm.toLowerCase().indexOf(s)>=0)&&(!st||r.className===st)&&
(!ty||r.cells[2].textContent===ty);r.hidden=!ok;if(ok)k++});n.textContent=k.toLocaleString("en-US")}
q.oninput=fs.onchange=ft.onchange=filt;
var m=/sort=(-?)(\d+)/.exec(location.hash);
if(m&&H[+m[2]]&&H[+m[2]].getAttribute("data-t"))sort(+m[2],m[1]?-1:1);
filt();
var tt=document.getElementById("tt"),hl=document.getElementById("hl"),
sp=tt.getElementsByTagName("span");
function nums(s,k){var v=s.getAttribute("data-"+k);return v?v.split(" ").map(Number):[]}
function sum(a){return a.reduce(function(x,y){return x+y},0)}
function info(s){if(s._i)return s._i;var X=nums(s,"x"),R=nums(s,"r"),C=nums(s,"c"),
e=s.getAttribute("data-e"),L=[];if(e!==null){e=e.split(" ");var u=s.hasAttribute("data-u")?1:0;
for(var i=0;i<R.length;i++){var j=i-u;L.push(j<0?"below "+e[0]:j>=e.length-1?
"above "+e[e.length-1]:e[j]+" to "+e[j+1])}}
else{try{L=JSON.parse(s.getAttribute("data-l"))}catch(x){}}
return s._i={X:X,R:R,C:C,L:L,r:sum(R),c:sum(C)}}
function pct(v,t){if(!t)return "–";var p=v/t;
return p===0?"0%":p<0.001?"<0.1%":(100*p).toFixed(1)+"%"}
function cnt(v){return v.toLocaleString("en-US")}
function hide(){tt.hidden=true;hl.hidden=true}
document.addEventListener("mousemove",function(ev){
var t=ev.target,s=t.closest?t.closest("td.g svg"):null;
if(!s||!s.hasAttribute("data-x")){if(!tt.hidden)hide();return}
var d=info(s),b=s.getBoundingClientRect(),x=ev.clientX-b.left,i=0;if(!d.R.length)return;
while(i<d.R.length-1&&x>=d.X[i+1])i++;
tt.firstChild.textContent=d.L[i]===undefined?"":d.L[i];
sp[0].textContent="reference "+pct(d.R[i],d.r);sp[1].textContent=cnt(d.R[i]);
sp[2].textContent="current "+pct(d.C[i],d.c);sp[3].textContent=cnt(d.C[i]);
tt.hidden=false;var w=tt.offsetWidth,h=tt.offsetHeight,l=ev.clientX+14,y=ev.clientY+16;
if(l+w>innerWidth-6)l=ev.clientX-14-w;if(y+h>innerHeight-6)y=ev.clientY-16-h;
tt.style.left=l+"px";tt.style.top=y+"px";hl.hidden=false;hl.style.left=b.left+d.X[i]+"px";
hl.style.top=b.top+"px";hl.style.width=d.X[i+1]-d.X[i]+"px";hl.style.height="@PLOT_H@px"});
addEventListener("scroll",hide,{passive:true});
document.documentElement.setAttribute("data-ready","1");
})();
